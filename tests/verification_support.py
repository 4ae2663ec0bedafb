"""Shared by the verification tests: heads of a store, and the auditor's script from the docs."""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from ledger.envelope import RecordedEvent
from ledger.integrity.merkle import Head
from ledger.store import EventStore

DOCS = Path(__file__).resolve().parents[1] / "docs" / "verification.md"


def heads_of(store: EventStore) -> list[Head]:
    """Every stream's head as the read model would offer it."""
    heads = []
    for stream_id in store.stream_ids():
        last: RecordedEvent = store.load(stream_id)[-1]
        heads.append(Head(stream_id, last.version, last.hash))
    return heads


def documented_script() -> str:
    """The Python block under "Checking a proof yourself" in docs/verification.md."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### Checking a proof yourself", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match is not None, "the auditor's script is missing from docs/verification.md"
    return match.group(1)


def documented_script_accepts(proof: dict[str, Any], digest_bytes: bytes) -> bool:
    """Run the documented script's ``main`` in-process (a subprocess per example is too slow
    for property tests; one test runs it as a real process)."""
    namespace: dict[str, Any] = {"__name__": "check_proof"}
    exec(compile(documented_script(), str(DOCS), "exec"), namespace)  # noqa: S102 - our own docs
    with tempfile.TemporaryDirectory() as directory:
        proof_path, digest_path = Path(directory, "proof.json"), Path(directory, "digest.json")
        proof_path.write_text(json.dumps(proof), encoding="utf-8")
        digest_path.write_bytes(digest_bytes)
        output = io.StringIO()
        try:
            with contextlib.redirect_stdout(output):
                namespace["main"](str(proof_path), str(digest_path))
        except (SystemExit, KeyError, TypeError, ValueError, IndexError):
            return False
        return output.getvalue().startswith("verified")
