"""The archive's storage port: a flat key space of immutable objects (S3, or a local folder).

Writers put whole objects (a reader sees an object entirely or not at all) and delete them; the
query engine reads them through DuckDB, which the backend tells how to reach them
(``duckdb_source``). Backends: ``archive.s3.S3ArchiveStorage`` and
``archive.local.LocalArchiveStorage``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# One listing call never returns more than this many keys; callers pass their own, lower bound.
LIST_KEYS_MAX = 1_000_000


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class S3Access:
    """What DuckDB's S3 secret needs: credentials, region and, for an S3-compatible endpoint
    (the emulated one), its ``host:port`` with path-style URLs."""

    region: str
    key_id: str
    secret: str
    session_token: str | None
    endpoint: str | None
    use_ssl: bool


@dataclass(frozen=True, slots=True)
class DuckDBSource:
    """Where DuckDB finds object ``key``: at ``root_url + key`` (a folder path or ``s3://b/``)."""

    root_url: str
    s3: S3Access | None = None

    def url(self, key: str) -> str:
        return self.root_url + key


class ArchiveStorage(Protocol):
    @property
    def location(self) -> str:
        """Where the archive is, for messages (``s3://bucket`` or a folder)."""
        ...

    def list(self, prefix: str, *, limit: int) -> list[StoredObject]:
        """Objects whose key starts with ``prefix``, sorted by key, at most ``limit``."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write (or overwrite) one object whole."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """Write (or overwrite) one object whole from a local file (large objects)."""
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Delete objects; a key that is already gone is not an error."""
        ...

    def duckdb_source(self) -> DuckDBSource: ...
