"""One function's runtime: ``python -m devstack.lambda_worker MODULE.FUNCTION NAME ARN MEMORY_MB``.

Like Lambda's Python runtime, it imports the handler once (the module reads its environment at
import: the process's environment is exactly the function's) and then serves invocations one at a
time. Requests arrive on stdin and answers leave on the original stdout, one JSON document per
line; whatever the handler prints or logs goes to stderr (the function's log), so it can never be
mistaken for an answer.

Request: ``{"event": …, "request_id": "…", "deadline_ms": <epoch ms>}``.
Answer: ``{"result": …}`` or ``{"error": {"errorType", "errorMessage", "stackTrace"}}`` in the
shape Lambda gives a failed invocation.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import IO, Any

ERROR_MESSAGE_CHARS_MAX = 4_000


@dataclass(frozen=True)
class WorkerContext:
    """The context object Lambda passes to a Python handler (the fields Powertools reads)."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline_ms: int
    function_version: str = "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[{self.function_version}]{os.getpid()}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


def error_document(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc)[:ERROR_MESSAGE_CHARS_MAX],
        "stackTrace": traceback.format_exception(exc)[-20:],
    }


def serve(handler_path: str, function_name: str, function_arn: str, memory_mb: int) -> None:
    answers = _claim_stdout()
    module_name, _, attribute = handler_path.rpartition(".")
    handler: Any = None
    init_error: dict[str, Any] | None = None
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:  # noqa: BLE001 - reported on every invocation, as Lambda does
        init_error = error_document(exc, "Runtime.ImportModuleError")
        traceback.print_exc()
    for line in sys.stdin:
        request = json.loads(line)
        if init_error is not None:
            _answer(answers, {"error": init_error})
            continue
        context = WorkerContext(
            function_name=function_name,
            memory_limit_in_mb=memory_mb,
            invoked_function_arn=function_arn,
            aws_request_id=str(request["request_id"]),
            deadline_ms=int(request["deadline_ms"]),
        )
        try:
            result = handler(request["event"], context)
            text = json.dumps({"result": result}, separators=(",", ":"))
        except Exception as exc:  # noqa: BLE001 - the invocation fails; the runtime lives on
            traceback.print_exc()
            text = json.dumps({"error": error_document(exc)}, separators=(",", ":"))
        _answer(answers, text)


def _claim_stdout() -> IO[str]:
    """Keep the original stdout for answers and send fd 1 (prints, Powertools logs) to stderr."""
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return answers


def _answer(answers: IO[str], document: dict[str, Any] | str) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    answers.write(text + "\n")
    answers.flush()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
