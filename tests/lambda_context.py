"""A Lambda context object as the runtime passes it, for calling handlers directly."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FakeLambdaContext:
    function_name: str
    timeout_ms: int = 10_000
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "4f0b8d4e-0000-4000-8000-000000000000"
    log_stream_name: str = "2026/11/21/[$LATEST]0"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms
