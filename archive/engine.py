"""DuckDB over the archive's Parquet objects: the ``events`` table auditors query locally.

``connect`` opens an in-memory DuckDB whose view ``events`` has exactly the Glue table's columns
(the stored ones, then ``year``, ``month``, ``day`` as strings), so the same SQL text runs here and
on Athena.

Guarantees:
- Partition pruning: ``year``/``month``/``day`` are computed from each object's path, and DuckDB
  skips every file whose path fails a filter on them, before opening it (any expression over
  those columns, ``?`` parameters included). A one-day query opens only that day's files.
- The declared schema, whatever the files hold: columns are matched by Parquet field id, so a
  file written before a column existed reads it as NULL and nothing reads any file's footer to
  learn the schema. An empty archive is an empty ``events`` with the same columns.
- No download, no side effects: extensions are never installed or auto-loaded; S3 is read
  through DuckDB's httpfs extension from the pinned ``duckdb-extension-httpfs`` package; once set
  up, the connection may read only the archive (and write only its own spill directory) and its
  configuration is locked, so auditors' SQL cannot reach other files or the network.
- Time zone UTC; ``json_extract_scalar(json, path)`` exists as in Athena (a macro over DuckDB's
  ``json_extract_string``), so reports read payload fields with one spelling.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

from archive.layout import EVENTS_PREFIX
from archive.schema import COLUMNS, PARTITION_COLUMNS, Column
from archive.storage import ArchiveStorage, DuckDBSource, S3Access

HTTPFS_PACKAGE = "duckdb_extension_httpfs"
EVENTS_GLOB = f"{EVENTS_PREFIX}year=*/month=*/day=*/*.parquet"
# The partition values of an object, from its path: .../events/year=YYYY/month=MM/day=DD/name
_PARTITION_PATTERN = r"/events/year=([0-9]{4})/month=([0-9]{2})/day=([0-9]{2})/[^/]+$"


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """DuckDB's resources: ``memory_limit`` like ``"2GB"`` (None: DuckDB's default, 80% of RAM);
    sorts and joins larger than it spill to ``spill_directory`` (None: a temporary directory of
    the connection's own, removed with it)."""

    memory_limit: str | None = None
    threads: int | None = None
    spill_directory: Path | None = None


DEFAULT_ENGINE_SETTINGS = EngineSettings()


def connect(
    storage: ArchiveStorage,
    settings: EngineSettings = DEFAULT_ENGINE_SETTINGS,
    *,
    columns: Sequence[Column] = COLUMNS,
    file_log: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the view ``events`` over ``storage``'s archive.

    ``file_log`` records every file DuckDB opens (``files_read``): a diagnostic for checking
    pruning. ``columns`` is the declared schema (tests pass a later one).
    """
    source = storage.duckdb_source()
    connection = open_connection(source, settings, file_log=file_log)
    try:
        if storage.list(EVENTS_PREFIX, limit=1):
            relation = select_events(read_parquet_sql([source.url(EVENTS_GLOB)], columns), columns)
        else:
            relation = _empty_events(columns)
        connection.execute(f"CREATE TEMP VIEW events AS {relation}")
    except BaseException:
        connection.close()
        raise
    return connection


def open_connection(
    source: DuckDBSource,
    settings: EngineSettings = DEFAULT_ENGINE_SETTINGS,
    *,
    file_log: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that can read ``source`` and nothing else, configuration locked."""
    connection = duckdb.connect(
        config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    )
    spill = settings.spill_directory
    if spill is None:
        # Its own directory: DuckDB names its spill files alike in every process.
        spill = Path(tempfile.mkdtemp(prefix="payledger-duckdb-"))
        weakref.finalize(connection, shutil.rmtree, spill, True)
    try:
        _configure(connection, source, settings, spill, file_log=file_log)
        connection.execute(
            "CREATE TEMP MACRO json_extract_scalar(json, path) AS json_extract_string(json, path)"
        )
        connection.execute("SET lock_configuration = true")
    except BaseException:
        connection.close()
        raise
    return connection


def _configure(
    connection: duckdb.DuckDBPyConnection,
    source: DuckDBSource,
    settings: EngineSettings,
    spill: Path,
    *,
    file_log: bool,
) -> None:
    connection.execute("SET TimeZone = 'UTC'")
    if settings.memory_limit is not None:
        connection.execute(f"SET memory_limit = {_literal(settings.memory_limit)}")
    if settings.threads is not None:
        connection.execute(f"SET threads = {int(settings.threads)}")
    connection.execute(f"SET temp_directory = {_literal(str(spill))}")
    if source.s3 is not None:
        connection.load_extension(str(httpfs_extension_path()))
        connection.execute(_secret_sql(source.s3))
    if file_log:
        connection.execute("CALL enable_logging('FileSystem')")
    allowed = ", ".join(_literal(path) for path in (source.root_url, f"{spill}/"))
    connection.execute(f"SET allowed_directories = [{allowed}]")
    connection.execute("SET enable_external_access = false")


def httpfs_extension_path() -> Path:
    """DuckDB's httpfs extension as the ``duckdb-extension-httpfs`` wheel ships it for exactly
    this DuckDB version (never downloaded at run time)."""
    try:
        package = resources.files(HTTPFS_PACKAGE)
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            f"reading the archive on S3 needs the {HTTPFS_PACKAGE} package"
            f" ({HTTPFS_PACKAGE.replace('_', '-')}=={duckdb.__version__})"
        ) from exc
    path = Path(str(package / "extensions" / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"))
    if not path.is_file():
        raise RuntimeError(f"no httpfs extension for DuckDB {duckdb.__version__} at {path}")
    return path


def _secret_sql(access: S3Access) -> str:
    options = {
        "TYPE": "s3",
        "KEY_ID": _literal(access.key_id),
        "SECRET": _literal(access.secret),
        "REGION": _literal(access.region),
        "USE_SSL": "true" if access.use_ssl else "false",
    }
    if access.session_token:
        options["SESSION_TOKEN"] = _literal(access.session_token)
    if access.endpoint is not None:
        options["ENDPOINT"] = _literal(access.endpoint)
        options["URL_STYLE"] = "'path'"
    body = ", ".join(f"{name} {value}" for name, value in options.items())
    return f"CREATE SECRET archive_s3 ({body})"  # temporary: held in memory only


def read_parquet_sql(urls: Sequence[str], columns: Sequence[Column] = COLUMNS) -> str:
    """``read_parquet`` of ``urls`` (globs allowed) with the declared columns matched by field
    id, plus ``filename``. Rows come in file order, and each file's in its own order (DuckDB
    preserves insertion order). ``file_row_number`` is not asked for: with a field-id schema,
    DuckDB 1.5.5 fails on a file whose column has no field id when it is."""
    fields = ", ".join(
        f"{column.field_id}: {{name: {_literal(column.name)}, type: "
        f"{_literal(column.duckdb_type)}, default_value: NULL}}"
        for column in columns
    )
    sources = ", ".join(_literal(url) for url in urls)
    return f"read_parquet([{sources}], schema = MAP {{{fields}}}, filename = true)"


def select_events(read_sql: str, columns: Sequence[Column] = COLUMNS) -> str:
    """The ``events`` columns of a ``read_parquet_sql`` relation, partitions from the path."""
    names = [_identifier(column.name) for column in columns]
    partitions = [
        f"regexp_extract(filename, {_literal(_PARTITION_PATTERN)}, {group}) AS {name}"
        for group, name in enumerate(PARTITION_COLUMNS, start=1)
    ]
    return f"SELECT {', '.join(names + partitions)} FROM {read_sql}"


def _empty_events(columns: Sequence[Column]) -> str:
    typed = [
        f"CAST(NULL AS {column.duckdb_type}) AS {_identifier(column.name)}" for column in columns
    ]
    typed += [f"CAST(NULL AS VARCHAR) AS {name}" for name in PARTITION_COLUMNS]
    return f"SELECT {', '.join(typed)} WHERE false"


def files_read(connection: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Every file DuckDB opened since logging began (``connect(file_log=True)``), in the order
    first opened, with the bytes it read from each."""
    rows = connection.execute(
        "SELECT message FROM duckdb_logs WHERE type = 'FileSystem'"
    ).fetchall()
    read: dict[str, int] = {}
    for (message,) in rows:
        entry = json.loads(message)
        path = str(entry.get("path"))
        if entry.get("op") == "OPEN":
            read.setdefault(path, 0)
        elif entry.get("op") == "READ":
            read[path] = read.get(path, 0) + int(entry.get("bytes", 0))
    return read


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
