"""Signed HTTP with bounded retries: every attempt is signed afresh with SigV4 (service
``execute-api``) by botocore and sent by urllib3; connection failures, 429 and 5xx are retried
with jittered exponential backoff. Commands are safe to retry because each carries one
idempotency key across all its attempts: the API records the command once and replays it after."""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import Session

from payledger_client.errors import ConfigurationError, ConnectionFailedError, PayledgerError

SERVICE = "execute-api"
DEFAULT_REGION = "us-east-1"
RETRIES_MAX = 10
TIMEOUT_S_MAX = 300.0
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 5.0
RESPONSE_BYTES_MAX = 16 * 1024 * 1024
USER_AGENT = "payledger-client/0.1.0"

# https://{api-id}.execute-api.{region}.amazonaws.com[.cn]/{stage}: the region is in the name.
_EXECUTE_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Transport:
    """Sends signed requests to one API (``api_url`` includes the stage, e.g. ``…/Prod``)."""

    def __init__(
        self,
        api_url: str,
        *,
        region: str | None,
        credentials: Credentials | None,
        timeout_s: float,
        retries_max: int,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError.client_side(f"api_url must be an http(s) URL, got {api_url!r}")
        if not 0 < timeout_s <= TIMEOUT_S_MAX:
            raise ValueError(f"timeout_s must be in (0, {TIMEOUT_S_MAX:g}], got {timeout_s}")
        if not 0 <= retries_max <= RETRIES_MAX:
            raise ValueError(f"retries_max must be 0 to {RETRIES_MAX}, got {retries_max}")
        session = Session() if credentials is None or region is None else None
        self.base_url = api_url.rstrip("/")
        self.region = region or _region(parts.hostname, session)
        self._credentials = credentials or _default_credentials(session)
        self._timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        self._retries_max = retries_max
        self._pool = urllib3.PoolManager(maxsize=10, retries=False)

    def close(self) -> None:
        self._pool.clear()

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """The response to the last attempt; raises ``ConnectionFailedError`` if none answered."""
        url = self.base_url + path
        if query:
            url += "?" + urlencode(query, quote_via=quote)  # %20, and "/" encoded, as SigV4 wants
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        request_headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if data is not None:
            request_headers["Content-Type"] = "application/json"
        request_headers.update(headers or {})
        for attempt in range(self._retries_max + 1):
            last = attempt == self._retries_max
            try:
                response = self._send(method, url, data, request_headers)
            except urllib3.exceptions.HTTPError as exc:
                if last:
                    message = f"{method} {url}: no response after {attempt + 1} attempts: {exc}"
                    raise ConnectionFailedError.client_side(message) from exc
                time.sleep(_backoff(attempt, None))
                continue
            if response.status not in RETRYABLE_STATUSES or last:
                return response
            time.sleep(_backoff(attempt, response.headers.get("retry-after")))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]
    ) -> HttpResponse:
        # Signed per attempt: a fresh X-Amz-Date, and credentials refreshed if they expire.
        signed = AWSRequest(method=method, url=url, data=data, headers=dict(headers))
        frozen = self._credentials.get_frozen_credentials()
        SigV4Auth(frozen, SERVICE, self.region).add_auth(signed)
        response = self._pool.request(
            method,
            url,
            body=data,
            headers=dict(signed.headers.items()),
            timeout=self._timeout,
            retries=False,
            redirect=False,
            preload_content=False,
        )
        try:
            raw = response.read(RESPONSE_BYTES_MAX + 1)
        finally:
            response.release_conn()
        if len(raw) > RESPONSE_BYTES_MAX:
            message = f"{method} {url}: response larger than {RESPONSE_BYTES_MAX} bytes"
            raise PayledgerError("response_too_large", message, response.status)
        headers_received = {name.lower(): value for name, value in response.headers.items()}
        return HttpResponse(response.status, headers_received, raw)


def _region(hostname: str, session: Session | None) -> str:
    """The region of an ``execute-api`` host name, else botocore's (``AWS_REGION``, the
    profile's…), else us-east-1 (the local gateway's)."""
    match = _EXECUTE_API_HOST.search(hostname)
    if match:
        return match.group(1)
    configured = session.get_config_variable("region") if session is not None else None
    return str(configured) if configured else DEFAULT_REGION


def _default_credentials(session: Session | None) -> Credentials:
    """botocore's default chain: environment, profile, SSO, container or instance role…"""
    credentials = session.get_credentials() if session is not None else None
    if credentials is None:
        raise ConfigurationError.client_side(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
            "AWS_SESSION_TOKEN), AWS_PROFILE, or pass credentials="
        )
    return credentials


def _backoff(attempt: int, retry_after: str | None) -> float:
    """Full jitter on an exponential ceiling; a server's ``Retry-After`` seconds win, capped."""
    if retry_after is not None and retry_after.strip().isdigit():
        return min(float(retry_after), BACKOFF_CAP_S)
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))  # noqa: S311
