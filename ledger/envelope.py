"""The stored event (DESIGN §3): one immutable envelope per item, hash-chained per stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActorKind = Literal["agent", "api", "system", "operator"]
ACTOR_KINDS: tuple[ActorKind, ...] = ("agent", "api", "system", "operator")
GENESIS_HASH = "0" * 64
PAYMENT_STREAM_PREFIX = "payment#"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: an agent (with model and version), an API client, the system or an operator."""

    kind: ActorKind
    id: str
    model: str | None = None
    version: str | None = None

    def to_dict(self) -> dict[str, str]:
        document = {"kind": self.kind, "id": self.id}
        if self.model is not None:
            document["model"] = self.model
        if self.version is not None:
            document["version"] = self.version
        return document


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One event as stored: ``payload`` is canonical JSON text, ``hash`` chains to ``prev_hash``."""

    stream_id: str
    version: int
    event_id: str
    event_type: str
    schema_version: int
    occurred_at: str
    recorded_at: str
    actor: Actor
    correlation_id: str
    causation_id: str | None
    idempotency_key: str
    request_digest: str
    payload: str
    prev_hash: str
    hash: str


def payment_stream_id(payment_id: str) -> str:
    return PAYMENT_STREAM_PREFIX + payment_id


def payment_id_of(stream_id: str) -> str:
    assert stream_id.startswith(PAYMENT_STREAM_PREFIX), stream_id
    return stream_id[len(PAYMENT_STREAM_PREFIX) :]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One stored item as read from a source: the event, or why it could not be read as one.

    ``version`` comes from the item's key (the table's sort key, the archive's column), which is
    what orders the stream whatever the item holds.
    """

    version: int
    event: RecordedEvent | None
    location: str | None = None
    error: str | None = None
