"""Where each consumer stands in each shard, kept on disk so a restarted pump resumes there.

One small JSON file per (consumer, shard), replaced atomically (write, then rename) after every
change: a pump killed at any instant finds either the state before a batch or the state after
it, never half of one. The state holds what Lambda keeps for a shard: the checkpoint (the last
sequence number done), the failed attempts of the record at the head, the ends of the batches
being retried or bisected, and an open tumbling window with its state.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(slots=True)
class ShardState:
    checkpoint: str | None = None  # the last sequence number done; None: nothing done yet
    attempts: int = 0  # failed invocations of the record after the checkpoint
    bounds: list[str] = field(default_factory=list)  # retried/bisected batch ends, nearest first
    window_start: float | None = None  # epoch seconds of the open tumbling window
    window_state: dict[str, Any] = field(default_factory=dict)
    window_terminated_early: bool = False  # the next invocation ends the window early
    invocations: int = 0
    errors: int = 0
    discarded: int = 0  # records given up on (retries exhausted or too old)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ShardState:
        return cls(**document)


class CheckpointStore:
    """``<directory>/<consumer>/<shard>.json`` for every consumer and shard."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, consumer: str, shard_id: str) -> Path:
        return self.directory / _UNSAFE.sub("_", consumer) / f"{_UNSAFE.sub('_', shard_id)}.json"

    def load(self, consumer: str, shard_id: str) -> ShardState:
        path = self._path(consumer, shard_id)
        if not path.exists():
            return ShardState()
        document = json.loads(path.read_text(encoding="utf-8"))
        return ShardState.from_dict(document["state"])

    def save(self, consumer: str, shard_id: str, state: ShardState) -> None:
        path = self._path(consumer, shard_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"consumer": consumer, "shard_id": shard_id, "state": state.to_dict()}
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
        os.replace(temporary, path)

    def entries(self) -> Iterator[tuple[str, str, ShardState]]:
        """Every (consumer, shard, state) on disk."""
        if not self.directory.exists():
            return
        for path in sorted(self.directory.glob("*/*.json")):
            document = json.loads(path.read_text(encoding="utf-8"))
            yield (
                document["consumer"],
                document["shard_id"],
                ShardState.from_dict(document["state"]),
            )
