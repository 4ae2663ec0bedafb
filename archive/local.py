"""The archive in a local folder: keys are relative paths (``events/year=…/….parquet``).

Used by the benchmarks, tests and anyone auditing a copy of the archive. Objects are written to a
hidden temporary file beside their final name and renamed into place, so a reader never sees half
an object, as on S3.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from archive.storage import DuckDBSource, StoredObject

_TEMPORARY_PREFIX = "."


class LocalArchiveStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def location(self) -> str:
        return str(self.root)

    def list(self, prefix: str, *, limit: int) -> list[StoredObject]:
        directory = self.root / prefix.rpartition("/")[0]
        found: list[StoredObject] = []
        for path in _files_in_key_order(directory):
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                found.append(StoredObject(key, path.stat().st_size))
                if len(found) == limit:
                    break
        return found

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._replacing(key) as handle:
            handle.write(data)

    def put_file(self, key: str, path: Path) -> None:
        with self._replacing(key) as handle, path.open("rb") as source:
            shutil.copyfileobj(source, handle, length=1 << 20)

    def _replacing(self, key: str) -> _Replacing:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        return _Replacing(target)

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def duckdb_source(self) -> DuckDBSource:
        return DuckDBSource(root_url=f"{self.root.as_posix()}/")

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        assert not key.startswith("/"), key
        assert path.is_relative_to(self.root), key
        return path


def _files_in_key_order(directory: Path) -> Iterator[Path]:
    """Files under ``directory`` in the order of their keys (as S3 lists them), lazily."""
    try:
        entries = sorted(
            os.scandir(directory), key=lambda entry: entry.name + ("/" if entry.is_dir() else "")
        )
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.name.startswith(_TEMPORARY_PREFIX):
            continue
        if entry.is_dir():
            yield from _files_in_key_order(Path(entry.path))
        else:
            yield Path(entry.path)


class _Replacing:
    """A temporary file beside ``target`` that replaces it atomically when closed cleanly."""

    def __init__(self, target: Path) -> None:
        self._target = target
        handle, name = tempfile.mkstemp(
            prefix=f"{_TEMPORARY_PREFIX}{target.name}.", dir=target.parent
        )
        self._temporary = Path(name)
        self._handle = os.fdopen(handle, "wb")

    def __enter__(self) -> _Replacing:
        return self

    def write(self, data: bytes) -> None:
        self._handle.write(data)

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self._handle.close()
        if exc_type is None:
            os.replace(self._temporary, self._target)
        else:
            self._temporary.unlink(missing_ok=True)
