"""Handlers for the function runtime tests, run in ``devstack.lambda_worker`` processes."""

from __future__ import annotations

import os
import time
from typing import Any


def environment(event: dict[str, Any], context: Any) -> dict[str, Any]:
    print("a print goes to the function's log, never into the answer")
    return {
        "environment": dict(os.environ),
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "pid": os.getpid(),
        "event": event,
    }


def fail(event: dict[str, Any], context: Any) -> None:
    raise ValueError("the function refused the event")


def sleep(event: dict[str, Any], context: Any) -> str:
    time.sleep(float(event["seconds"]))
    return "slept"
