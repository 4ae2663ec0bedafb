"""Hard limits (DESIGN §4), each enforced with ``LimitExceededError``, never truncated."""

from __future__ import annotations

PAYLOAD_BYTES_MAX = 32 * 1024
STREAM_EVENTS_MAX = 1_000
# Every integer a command puts in an event stays within ±(2^53 - 1), the range a JSON number
# holds exactly (I-JSON, RFC 7493): canonical JSON is then RFC 8785's, byte for byte, and any
# verifier in any language reproduces the hashed bytes.
INTEGER_MAX = 2**53 - 1
AMOUNT_MINOR_MAX = INTEGER_MAX
METADATA_KEYS_MAX = 32
METADATA_KEY_CHARS_MAX = 64
METADATA_VALUE_CHARS_MAX = 512
TEXT_CHARS_MAX = 1_024
ID_CHARS_MAX = 64
IDEMPOTENCY_KEY_CHARS_MAX = 128
EVENTS_PER_APPEND_MAX = 100
HOLD_DAYS_MAX = 31
