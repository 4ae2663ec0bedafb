"""The projection function with a pause after it applied a batch, for killing its pump there.

It runs ``handlers.project.handler`` (wired from its environment, as deployed), appends the
batch's sequence numbers to ``$PAUSE_DIRECTORY/delivered.jsonl``, and while
``$PAUSE_DIRECTORY/pause`` exists writes its pid to ``$PAUSE_DIRECTORY/paused`` and waits: the
batch is applied, its checkpoint not yet saved.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from handlers import project

DIRECTORY = Path(os.environ["PAUSE_DIRECTORY"])


def handler(event: dict[str, Any], context: Any) -> Any:
    result = project.handler(event, context)
    numbers = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
    with (DIRECTORY / "delivered.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps(numbers) + "\n")
    while (DIRECTORY / "pause").exists():
        (DIRECTORY / "paused").write_text(str(os.getpid()), encoding="utf-8")
        time.sleep(0.05)
    return result
