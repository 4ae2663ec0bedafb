"""The local runtime's process: every event source mapping of the stack, and the table's
Kinesis destination, running until terminated.

``python -m devstack.runtime HOME`` reads ``HOME/runtime.json`` (a ``RuntimeConfig``), starts one
runtime process per function (``devstack.functions``), one thread per (mapping, shard) running
its ``ShardPump`` and one per table stream shard running its ``TableForwarder``, and writes
``HOME/runtime-status.json`` every second (what runs, per shard where it stands). While
``HOME/drain`` exists, waiting batches are invoked without waiting out their batching window
(``devstack.local.drain``). SIGTERM stops
it: the threads finish the step they are in, the function processes exit. Killed instead, it
loses nothing: every consumer resumes from its checkpoint in ``HOME/checkpoints``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.config import Config

from devstack.checkpoints import CheckpointStore
from devstack.forwarder import TableForwarder
from devstack.functions import FunctionWorker, function_environment, local_target
from devstack.mappings import RuntimeConfig, SourceKind
from devstack.pump import DeadLetters, ShardPump
from devstack.streams import DynamoDBStreamSource, stream_source
from handlers import bootstrap

CONFIG_FILE = "runtime.json"
STATUS_FILE = "runtime-status.json"
DRAIN_FILE = "drain"  # present: batches are invoked without waiting out their batching window
CHECKPOINTS_DIRECTORY = "checkpoints"
LOGS_DIRECTORY = "logs"
# Lambda's base polling rates: a DynamoDB stream shard 4 times a second, a Kinesis shard once;
# a poll that found records is followed by the next one at once.
POLL_INTERVALS_S = {SourceKind.DYNAMODB: 0.25, SourceKind.KINESIS: 1.0}
STATUS_INTERVAL_S = 1.0
ERROR_DELAY_S = 1.0
STOP_TIMEOUT_S = 10.0
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    read_timeout=30,
)

logger = logging.getLogger(__name__)


class Steppable(Protocol):
    shard_id: str

    def step(self) -> bool: ...

    def recover(self) -> None: ...


@dataclass
class _Loop:
    consumer: str
    function: str | None
    worker: Steppable
    poll_interval_s: float
    thread: threading.Thread | None = None
    last_error: str | None = None


def aws_clients(endpoint_url: str, region: str) -> dict[str, Any]:
    """One client per service for the local endpoint, with dummy credentials."""
    target = local_target(endpoint_url, region)
    return {
        service: bootstrap.aws_client(target, service, _CLIENT_CONFIG)
        for service in ("dynamodbstreams", "kinesis", "sqs", "dynamodb", "s3")
    }


class Runtime:
    """Workers, pumps and forwarders of one ``RuntimeConfig``; ``start`` then ``stop``."""

    def __init__(
        self,
        config: RuntimeConfig,
        home: Path,
    ) -> None:
        self.config = config
        self.home = home
        self.store = CheckpointStore(home / CHECKPOINTS_DIRECTORY)
        self._stopping = threading.Event()
        self._clients = aws_clients(config.endpoint_url, config.region)
        used = {mapping.function for mapping in config.mappings if mapping.enabled}
        self.workers = {
            target.name: FunctionWorker(
                target,
                function_environment(
                    target,
                    endpoint_url=config.endpoint_url,
                    region=config.region,
                    database_url=config.database_url,
                ),
                log_path=home / LOGS_DIRECTORY / f"{target.name}.log",
            )
            for target in config.functions
            if target.name in used
        }
        self.loops: list[_Loop] = []
        self.started_at = 0.0

    def start(self) -> Runtime:
        self.started_at = time.time()
        for worker in self.workers.values():
            worker.start()
        self.loops = list(self._build_loops())
        for loop in self.loops:
            loop.thread = threading.Thread(
                target=self._run,
                args=(loop,),
                daemon=True,
                name=f"{loop.consumer}/{loop.worker.shard_id}",
            )
            loop.thread.start()
        return self

    def _build_loops(self) -> Iterator[_Loop]:
        streams, kinesis, sqs = (
            self._clients["dynamodbstreams"],
            self._clients["kinesis"],
            self._clients["sqs"],
        )
        for destination in self.config.destinations:
            table_stream = DynamoDBStreamSource(streams, destination.table_stream_arn)
            for shard_id in table_stream.shard_ids():
                forwarder = TableForwarder(destination, table_stream, shard_id, kinesis, self.store)
                interval = POLL_INTERVALS_S[SourceKind.DYNAMODB]
                yield _Loop(forwarder.consumer, None, forwarder, interval)
        for mapping in self.config.mappings:
            if not mapping.enabled:
                continue
            target = self.config.function(mapping.function)
            source = stream_source(
                mapping.source_arn,
                dynamodb_streams=streams,
                kinesis=kinesis,
                invoke_identity_arn=target.role,
            )
            dead_letters = (
                DeadLetters(sqs, mapping.on_failure_arn) if mapping.on_failure_arn else None
            )
            worker = self.workers[mapping.function]
            for shard_id in source.shard_ids():
                pump = ShardPump(
                    mapping,
                    source,
                    shard_id,
                    worker.invoke,
                    self.store,
                    function_arn=target.arn,
                    dead_letters=dead_letters,
                    draining=self._draining,
                )
                interval = POLL_INTERVALS_S[mapping.source_kind]
                yield _Loop(mapping.name, mapping.function, pump, interval)

    def _draining(self) -> bool:
        return (self.home / DRAIN_FILE).exists()

    def _run(self, loop: _Loop) -> None:
        while not self._stopping.is_set():
            try:
                worked = loop.worker.step()
            except Exception as exc:
                logger.exception("%s %s failed", loop.consumer, loop.worker.shard_id)
                loop.last_error = f"{type(exc).__name__}: {exc}"[:500]
                loop.worker.recover()
                self._stopping.wait(ERROR_DELAY_S)
                continue
            if not worked:
                self._stopping.wait(loop.poll_interval_s)

    def stop(self) -> None:
        self._stopping.set()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for loop in self.loops:
            if loop.thread is not None:
                loop.thread.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers.values():
            worker.stop()

    def status(self) -> dict[str, Any]:
        consumers = []
        for loop in self.loops:
            state = getattr(loop.worker, "state", None)
            consumers.append(
                {
                    "consumer": loop.consumer,
                    "function": loop.function,
                    "shard_id": loop.worker.shard_id,
                    "checkpoint": None if state is None else state.checkpoint,
                    "buffered": len(getattr(loop.worker, "buffer", ())),
                    "invocations": 0 if state is None else state.invocations,
                    "errors": 0 if state is None else state.errors,
                    "discarded": 0 if state is None else state.discarded,
                    "window_start": None if state is None else state.window_start,
                    "last_error": loop.last_error,
                }
            )
        return {
            "pid": os.getpid(),
            "started_at": self.started_at,
            "heartbeat_at": time.time(),
            "functions": {
                name: {"pid": worker.pid, "cold_starts": worker.cold_starts}
                for name, worker in self.workers.items()
            },
            "consumers": consumers,
        }

    def write_status(self) -> None:
        path = self.home / STATUS_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.status(), indent=1), encoding="utf-8")
        os.replace(temporary, path)

    def serve(self) -> None:
        """Run until SIGTERM or SIGINT, writing the status file."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stopping.set())
        self.start()
        try:
            while not self._stopping.wait(STATUS_INTERVAL_S):
                self.write_status()
        finally:
            self.stop()
            self.write_status()


def load_config(home: Path) -> RuntimeConfig:
    return RuntimeConfig.from_dict(json.loads((home / CONFIG_FILE).read_text(encoding="utf-8")))


def write_config(home: Path, config: RuntimeConfig) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=1), encoding="utf-8")


def main(argv: list[str]) -> None:
    home = Path(argv[1])
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    Runtime(load_config(home), home).serve()


if __name__ == "__main__":
    main(sys.argv)
