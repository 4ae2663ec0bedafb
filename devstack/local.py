"""``payledger local up|status|down``: the whole application on one machine.

``up`` starts moto's server on a loopback port the OS picks and the embedded PostgreSQL (a Unix
socket under ``.payledger/pg``), deploys template.yaml onto the emulated AWS (``devstack.deploy``),
whose migration function fills a fresh schema, and starts the runtime process (``devstack.runtime``)
with every event source mapping and table destination the deployed stack declares, and the local
HTTP gateway (``devstack.gateway``) serving the deployed REST API; its URL is the stack's
``ApiUrl`` output. Everything it starts runs in the background, recorded under
``.payledger/run``; ``.payledger/local.json`` says where the stack is, for ``status``, ``down``
and every other command (``payledger history ID`` works against it when nothing else is
configured).

The emulated AWS lives in memory: a stack that is brought down is gone, so ``up`` starts from
nothing (new stack, fresh views, no checkpoints) unless moto and PostgreSQL still run: then it
only restarts the runtime and the gateway (after a crash of either), which resume from their
checkpoints. ``down`` stops what ``up`` started, found through its pid files, also after a crash,
and drops the schemas ``payledger rebuild`` left in the embedded PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from devstack import gateway, processes
from devstack.functions import LOCAL_CREDENTIALS, local_target
from devstack.mappings import RuntimeConfig
from devstack.motoserver import LOOPBACK, MOTO_MARKER, start_detached_moto
from devstack.postgres import postmaster_pid, start_detached_postgres
from devstack.runtime import (
    CHECKPOINTS_DIRECTORY,
    DRAIN_FILE,
    LOGS_DIRECTORY,
    STATUS_FILE,
    aws_clients,
    load_config,
    write_config,
)
from devstack.streams import count_after, stream_source
from devstack.template import load_template, parameter_defaults
from handlers import bootstrap
from projections.postgres.tables import analytics_schema

DEFAULT_HOME = Path(".payledger")
STATE_FILE = "local.json"
RUN_DIRECTORY = "run"
POSTGRES_DIRECTORY = "pg"
STACK_NAME = "payledger-local"
REGION = "us-east-1"
LAG_COUNT_MAX = 10_000
START_TIMEOUT_S = 60
REPO_ROOT = Path(__file__).resolve().parent.parent
_RUNTIME_MARKER = "devstack.runtime"
_POSTGRES_MARKER = "postgres"
API_URL_OUTPUT = "ApiUrl"
# Schemas ``payledger rebuild`` creates beside the live one (``projections.rebuild``).
_REBUILD_SUFFIXES = ("_rebuild_", "_replaced_")

Report = Callable[[str], None]


class LocalStackError(RuntimeError):
    """The local stack could not be started (the message says which part and why)."""


@dataclass(frozen=True, slots=True)
class LocalState:
    """Where a running local stack is: what other commands need to use it."""

    home: str
    endpoint_url: str
    region: str
    stack_name: str
    database_url: str
    database_schema: str
    outputs: dict[str, str]
    started_at: float

    @property
    def events_table(self) -> str:
        return self.outputs[bootstrap.EVENTS_TABLE_OUTPUT]

    @property
    def aws(self) -> bootstrap.AwsTarget:
        return local_target(self.endpoint_url, self.region)

    @property
    def api_url(self) -> str:
        return self.outputs[API_URL_OUTPUT]


@dataclass
class ProcessStatus:
    name: str
    pid: int
    running: bool


@dataclass
class ConsumerStatus:
    consumer: str
    function: str | None
    shard_id: str
    checkpoint: str | None
    behind: int  # records in the shard after the checkpoint (at most LAG_COUNT_MAX counted)
    window_open: bool
    invocations: int
    errors: int
    discarded: int

    @property
    def caught_up(self) -> bool:
        return self.behind == 0 and not self.window_open


@dataclass
class StackStatus:
    state: LocalState | None
    processes: list[ProcessStatus] = field(default_factory=list)
    consumers: list[ConsumerStatus] = field(default_factory=list)
    dead_letters: dict[str, int] = field(default_factory=dict)  # queue name -> messages

    @property
    def running(self) -> bool:
        processes = self.processes
        return self.state is not None and bool(processes) and all(p.running for p in processes)

    @property
    def caught_up(self) -> bool:
        return self.running and all(consumer.caught_up for consumer in self.consumers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "state": None if self.state is None else asdict(self.state),
            "processes": [asdict(process) for process in self.processes],
            "consumers": [asdict(consumer) for consumer in self.consumers],
            "dead_letters": self.dead_letters,
        }


# ── State ────────────────────────────────────────────────────────────────────────────────────


def read_state(home: Path = DEFAULT_HOME) -> LocalState | None:
    path = home / STATE_FILE
    if not path.exists():
        return None
    return LocalState(**json.loads(path.read_text(encoding="utf-8")))


def running_stack(home: Path = DEFAULT_HOME) -> LocalState | None:
    """The local stack if it is up (every process it started still running), else None."""
    state = read_state(home)
    if state is None:
        return None
    started = processes.recorded(home / RUN_DIRECTORY)
    alive = all(processes.is_running(entry.pid, entry.marker) for entry in started)
    return state if started and alive else None


# ── up ───────────────────────────────────────────────────────────────────────────────────────


def up(home: Path = DEFAULT_HOME, *, report: Report = lambda _: None) -> LocalState:
    """Start the local stack (or return the one already running)."""
    state = running_stack(home)
    if state is not None:
        report(f"already running at {state.endpoint_url}")
        return state
    state = _restartable(home)
    if state is not None:
        return _restart(home, state, report)
    down(home)  # whatever a crashed stack left behind
    try:
        return _start(home, report)
    except BaseException:
        down(home)
        raise


def _start(home: Path, report: Report) -> LocalState:
    home.mkdir(parents=True, exist_ok=True)
    run = home / RUN_DIRECTORY
    shutil.rmtree(home / CHECKPOINTS_DIRECTORY, ignore_errors=True)
    report("starting moto's server on loopback")
    endpoint_url = _start_moto(home, run)
    report(f"AWS emulated at {endpoint_url}; starting the embedded PostgreSQL")
    database_url, postgres = start_detached_postgres(home / POSTGRES_DIRECTORY)
    processes.record(run, "postgres", postgres, _POSTGRES_MARKER)
    schema = parameter_defaults(load_template())["DatabaseSchema"]
    _fresh_schema(database_url, schema)
    report(f"deploying template.yaml (its custom resource migrates the fresh schema {schema!r})")
    config, outputs, api = _deploy(endpoint_url, database_url)
    schema = _database_schema(config)
    write_config(home, config)
    gateway.write_definition(home, api)
    report("starting the runtime: event source mappings and the Kinesis destination")
    _start_runtime(home, run)
    report("starting the HTTP gateway of the API")
    outputs[API_URL_OUTPUT] = _start_gateway(home, run)
    state = LocalState(
        home=str(home),
        endpoint_url=endpoint_url,
        region=config.region,
        stack_name=STACK_NAME,
        database_url=database_url,
        database_schema=schema,
        outputs=dict(outputs),
        started_at=time.time(),
    )
    (home / STATE_FILE).write_text(json.dumps(asdict(state), indent=1), encoding="utf-8")
    return state


def _start_moto(home: Path, run: Path) -> str:
    pid, port = start_detached_moto(home / LOGS_DIRECTORY / "moto.log", cwd=REPO_ROOT)
    processes.record(run, "moto", pid, MOTO_MARKER)
    return f"http://{LOOPBACK}:{port}"


def _restartable(home: Path) -> LocalState | None:
    """The stack when its emulated AWS and database still run (what it holds is alive) but the
    runtime or the gateway stopped."""
    state = read_state(home)
    if state is None or not (home / gateway.DEFINITION_FILE).exists():
        return None
    alive = {
        entry.name
        for entry in processes.recorded(home / RUN_DIRECTORY)
        if processes.is_running(entry.pid, entry.marker)
    }
    return state if {"moto", "postgres"} <= alive else None


def _restart(home: Path, state: LocalState, report: Report) -> LocalState:
    """Start the runtime and the gateway again on the running stack: the events, views and
    checkpoints are kept, and the gateway keeps its port when it is still free."""
    run = home / RUN_DIRECTORY
    report("the runtime or the gateway had stopped: restarting them on the running stack")
    _stop(run, ("gateway", "runtime"))
    for name in (STATUS_FILE, gateway.STATUS_FILE):
        (home / name).unlink(missing_ok=True)
    previous = gateway.read_definition(home)
    port = int(state.api_url.rsplit(":", 1)[1].split("/", 1)[0]) if state.api_url else 0
    gateway.write_definition(home, replace(previous, port=port))
    _start_runtime(home, run)
    restarted = replace(state, outputs={**state.outputs, API_URL_OUTPUT: _start_gateway(home, run)})
    (home / STATE_FILE).write_text(json.dumps(asdict(restarted), indent=1), encoding="utf-8")
    return restarted


def _deploy(
    endpoint_url: str, database_url: str
) -> tuple[RuntimeConfig, dict[str, str], gateway.ApiDefinition]:
    from devstack.deploy import deploy_stack
    from devstack.stack import runtime_config

    with _local_credentials():
        deployed = deploy_stack(endpoint_url, STACK_NAME, region=REGION, database_url=database_url)
    clients = aws_clients(endpoint_url, deployed.region)
    config = runtime_config(
        deployed,
        endpoint_url=endpoint_url,
        database_url=database_url,
        dynamodb=clients["dynamodb"],
        kinesis=clients["kinesis"],
    )
    api = gateway.api_definition(
        deployed.template,
        deployed.physical_ids,
        deployed.parameters,
        region=deployed.region,
        account_id=deployed.stack_id.split(":")[4],
        stage=deployed.parameters["Stage"],
    )
    return config, dict(deployed.outputs), api


@contextmanager
def _local_credentials() -> Iterator[None]:
    """The deploy's clients take this process's credentials: while it runs they are the dummy
    ones moto accepts, so it needs none and a real one never reaches the local endpoint."""
    names = (*LOCAL_CREDENTIALS, "AWS_PROFILE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(LOCAL_CREDENTIALS)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _database_schema(config: RuntimeConfig) -> str:
    schemas = {
        target.environment[bootstrap.DATABASE_SCHEMA_VARIABLE]
        for target in config.functions
        if bootstrap.DATABASE_SCHEMA_VARIABLE in target.environment
    }
    if len(schemas) > 1:
        raise LocalStackError(f"the functions disagree on the database schema: {sorted(schemas)}")
    return schemas.pop() if schemas else bootstrap.DEFAULT_DATABASE_SCHEMA


def _fresh_schema(database_url: str, schema: str) -> None:
    """The views and the analytics windows start empty, as the emulated AWS does: events of an
    earlier stack are gone. The deploy's migrations then create them again."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        for name in (schema, analytics_schema(schema)):
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
            )


def _start_runtime(home: Path, run: Path) -> None:
    process = processes.spawn(
        [sys.executable, "-m", _RUNTIME_MARKER, str(home.resolve())],
        log_path=home / LOGS_DIRECTORY / "runtime.log",
        cwd=REPO_ROOT,
    )
    processes.record(run, "runtime", process.pid, _RUNTIME_MARKER)
    _reap_when_done(process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (home / STATUS_FILE).exists():
        if process.poll() is not None or time.monotonic() > deadline:
            log = home / LOGS_DIRECTORY / "runtime.log"
            raise LocalStackError(f"the runtime did not start (see {log})")
        time.sleep(0.05)


def _start_gateway(home: Path, run: Path) -> str:
    """Start the gateway process; the API's URL once it serves."""
    (home / gateway.STATUS_FILE).unlink(missing_ok=True)
    log = home / LOGS_DIRECTORY / "gateway.log"
    process = processes.spawn(
        [sys.executable, "-m", gateway.GATEWAY_MARKER, str(home.resolve())],
        log_path=log,
        cwd=REPO_ROOT,
    )
    processes.record(run, "gateway", process.pid, gateway.GATEWAY_MARKER)
    _reap_when_done(process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while (status := gateway.read_status(home)) is None or status["pid"] != process.pid:
        if process.poll() is not None or time.monotonic() > deadline:
            raise LocalStackError(f"the gateway did not start (see {log})")
        time.sleep(0.05)
    return str(status["url"])


def _reap_when_done(process: subprocess.Popen[bytes]) -> None:
    """The stack's processes outlive ``up``; while the process that started them lives on (a
    test, the demo), a thread waits for each so that its end leaves no zombie."""
    threading.Thread(target=process.wait, daemon=True, name=f"reap-{process.pid}").start()


# ── down ─────────────────────────────────────────────────────────────────────────────────────


@dataclass
class DownReport:
    """What ``down`` stopped and dropped, and where what it keeps is."""

    stopped: list[str]
    dropped_schemas: list[str]
    logs: str  # the processes' logs, kept for a look after a crash
    postgres_data: str  # the embedded PostgreSQL's data directory, kept for the next ``up``


_STOP_ORDER = ("gateway", "runtime", "moto", "postgres")


def down(home: Path = DEFAULT_HOME) -> DownReport:
    """Stop everything ``up`` started (gateway, runtime, moto, then PostgreSQL once the schemas
    ``payledger rebuild`` left in it are dropped)."""
    run = home / RUN_DIRECTORY
    state = read_state(home)
    stopped = _stop(run, _STOP_ORDER[:3])
    dropped = _drop_rebuild_schemas(state, run) if state is not None else []
    stopped += _stop(run, None)
    leftover = postmaster_pid(home / POSTGRES_DIRECTORY)
    if leftover is not None and processes.stop(leftover, _POSTGRES_MARKER, signum=2):
        stopped.append("postgres")
    for name in (STATE_FILE, STATUS_FILE, DRAIN_FILE, gateway.STATUS_FILE):
        (home / name).unlink(missing_ok=True)
    return DownReport(
        stopped=stopped,
        dropped_schemas=dropped,
        logs=str(home / LOGS_DIRECTORY),
        postgres_data=str(home / POSTGRES_DIRECTORY),
    )


def _stop(run: Path, names: tuple[str, ...] | None) -> list[str]:
    """Stop the recorded processes called ``names`` (all when None), in ``_STOP_ORDER``."""
    stopped = []
    order = {name: index for index, name in enumerate(_STOP_ORDER)}
    for entry in sorted(processes.recorded(run), key=lambda item: order.get(item.name, 9)):
        if names is not None and entry.name not in names:
            continue
        # PostgreSQL's fast shutdown is SIGINT; the others end cleanly on SIGTERM.
        signum = 2 if entry.name == "postgres" else 15
        if processes.stop(entry.pid, entry.marker, signum=signum):
            stopped.append(entry.name)
        processes.forget(run, entry.name)
    return stopped


def _drop_rebuild_schemas(state: LocalState, run: Path) -> list[str]:
    """Drop the schemas rebuilds created beside the live one (``<schema>_rebuild_<time>``, and
    ``<schema>_replaced_<time>`` that a swap retired), while the embedded PostgreSQL runs."""
    alive = any(
        entry.name == "postgres" and processes.is_running(entry.pid, entry.marker)
        for entry in processes.recorded(run)
    )
    if not alive:
        return []
    prefixes = [state.database_schema + suffix for suffix in _REBUILD_SUFFIXES]
    with psycopg.connect(state.database_url, autocommit=True) as connection:
        names = [
            str(row[0])
            for row in connection.execute("SELECT nspname FROM pg_namespace ORDER BY nspname")
            if any(str(row[0]).startswith(prefix) for prefix in prefixes)
        ]
        for name in names:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
            )
    return names


# ── status ───────────────────────────────────────────────────────────────────────────────────


def status(home: Path = DEFAULT_HOME) -> StackStatus:
    state = read_state(home)
    report = StackStatus(state=state)
    report.processes = [
        ProcessStatus(entry.name, entry.pid, processes.is_running(entry.pid, entry.marker))
        for entry in processes.recorded(home / RUN_DIRECTORY)
    ]
    if state is None or not report.running:
        return report
    config = load_config(home)
    clients = aws_clients(config.endpoint_url, config.region)
    report.consumers = list(_consumers(home, config, clients))
    for mapping in config.mappings:
        if mapping.on_failure_arn:
            name = mapping.on_failure_arn.rsplit(":", 1)[1]
            report.dead_letters[name] = _queue_depth(clients["sqs"], name)
    return report


def _consumers(
    home: Path, config: RuntimeConfig, clients: dict[str, Any]
) -> Iterator[ConsumerStatus]:
    from devstack.checkpoints import CheckpointStore
    from devstack.forwarder import destination_consumer

    store = CheckpointStore(home / CHECKPOINTS_DIRECTORY)
    sources: list[tuple[str, str | None, str, str]] = [
        (destination_consumer(d), None, d.table_stream_arn, "TRIM_HORIZON")
        for d in config.destinations
    ]
    sources += [
        (m.name, m.function, m.source_arn, m.starting_position)
        for m in config.mappings
        if m.enabled
    ]
    for consumer, function, arn, position in sources:
        source = stream_source(
            arn, dynamodb_streams=clients["dynamodbstreams"], kinesis=clients["kinesis"]
        )
        for shard_id in source.shard_ids():
            state = store.load(consumer, shard_id)
            behind = count_after(
                source, shard_id, state.checkpoint, position=position, cap=LAG_COUNT_MAX
            )
            yield ConsumerStatus(
                consumer=consumer,
                function=function,
                shard_id=shard_id,
                checkpoint=state.checkpoint,
                behind=behind,
                window_open=state.window_start is not None,
                invocations=state.invocations,
                errors=state.errors,
                discarded=state.discarded,
            )


def _queue_depth(sqs: Any, name: str) -> int:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


# ── waiting for the consumers ────────────────────────────────────────────────────────────────


def drain(home: Path = DEFAULT_HOME, *, enabled: bool = True) -> None:
    """While enabled, the runtime invokes waiting batches at once instead of letting a batching
    window run out: ``MaximumBatchingWindowInSeconds`` is the longest Lambda may wait, and
    invoking sooner is what it does when a batch fills, so no consumer can depend on waiting.
    Tumbling windows still end on time."""
    path = home / DRAIN_FILE
    if enabled:
        path.touch()
    else:
        path.unlink(missing_ok=True)


def wait_until_caught_up(
    home: Path = DEFAULT_HOME,
    *,
    timeout_s: float,
    progress: Callable[[StackStatus], None] = lambda _: None,
    interval_s: float = 0.5,
) -> StackStatus:
    """Poll ``status`` until every consumer has processed every record and closed its windows
    (the forwarder first: Kinesis consumers are only behind once it caught up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        current = status(home)
        progress(current)
        if current.caught_up or time.monotonic() > deadline:
            return current
        time.sleep(interval_s)
