"""The local HTTP gateway: the deployed REST API served on loopback as API Gateway serves it.

``python -m devstack.gateway HOME`` reads ``HOME/gateway.json`` (an ``ApiDefinition``, read from
the deployed, SAM-transformed template by ``api_definition``) and ``HOME/runtime.json`` (where
the API function and the emulated AWS are), listens on loopback and writes
``HOME/gateway-status.json`` (its pid, port and URL) once it serves. SIGTERM stops it.

Each request goes through API Gateway's steps for this API, in its order: the route (the most
specific resource; a resource without the method, or no resource, is 403 "Missing Authentication
Token"), IAM authentication (SigV4 verified against the credentials the emulated IAM and STS
issued, looked up in moto's process: ``devstack.motoserver.principal_lookup``), authorisation of
``execute-api:Invoke`` against the caller's policies (moto's policy evaluation), the request
validator (required headers, answered with the template's BAD_REQUEST_PARAMETERS response),
throttling (a token bucket per method and resource, the template's THROTTLED response), and the
Lambda proxy integration: ``proxy_event`` built as AWS builds it, invoked in the API function's
own runtime processes (``devstack.functions``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials
from werkzeug.serving import BaseWSGIServer, make_server

from devstack.functions import FunctionWorker, Invocation, function_environment
from devstack.mappings import FunctionTarget
from devstack.motoserver import LOOPBACK, PRINCIPAL_ROUTE

DEFINITION_FILE = "gateway.json"
STATUS_FILE = "gateway-status.json"
GATEWAY_MARKER = "devstack.gateway"
SERVICE = "execute-api"
RATE_LIMIT_PARAMETER = "ApiThrottlingRateLimit"
BURST_LIMIT_PARAMETER = "ApiThrottlingBurstLimit"
CLOCK_SKEW_S = 300
PRINCIPAL_CACHE_S = 1.0
WORKERS_MAX = 4
INIT_TIMEOUT_S = 30  # Lambda allows 10 s; a loaded laptop imports slower
_EXTENSION = "x-amazon-apigateway-"
_ANY = "ANY"
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your"
    " AWS Secret Access Key and signing method. Consult the service documentation for details."
)

logger = logging.getLogger(__name__)


# ── The API as deployed ──────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Route:
    """One resource of the REST API: its path template and, per method (``ANY`` included), the
    request headers its validator requires."""

    resource: str
    methods: dict[str, list[str]]

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when ``path`` is this resource, else None."""
        pattern = "".join(
            f"/(?P<{_group(part)}>.+)"
            if part.endswith("+}")
            else f"/(?P<{_group(part)}>[^/]+)"
            if part.startswith("{")
            else "/" + re.escape(part)
            for part in self.resource.strip("/").split("/")
            if part
        )
        found = re.fullmatch(pattern or "/", path)
        if found is None:
            return None
        names = [part.strip("{}+") for part in self.resource.split("/") if part.startswith("{")]
        return dict(zip(names, found.groups(), strict=True))

    @property
    def specificity(self) -> tuple[int, int]:
        """Literal segments beat parameters, which beat a greedy ``{proxy+}``."""
        parts = [part for part in self.resource.split("/") if part]
        greedy = any(part.endswith("+}") for part in parts)
        return (0 if greedy else 1, sum(1 for part in parts if not part.startswith("{")))


def _group(part: str) -> str:
    return re.sub(r"\W", "_", part.strip("{}+"))


@dataclass(frozen=True, slots=True)
class ApiDefinition:
    """What the gateway serves, read from the deployed stack (``api_definition``)."""

    api_id: str
    stage: str
    region: str
    account_id: str
    function: str
    routes: list[Route]
    gateway_responses: dict[str, dict[str, str]]  # response type -> statusCode, template
    rate_limit: float
    burst_limit: int
    port: int = 0  # 0: a free port the OS picks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> ApiDefinition:
        values = dict(document)
        values["routes"] = [Route(**route) for route in values["routes"]]
        return cls(**values)

    def route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The most specific resource ``path`` is, if it has ``method`` (or ANY)."""
        for route in sorted(self.routes, key=lambda r: r.specificity, reverse=True):
            parameters = route.match(path)
            if parameters is not None:
                return (route, parameters) if _method_of(route, method) else None
        return None


def _method_of(route: Route, method: str) -> str | None:
    if method in route.methods:
        return method
    return _ANY if _ANY in route.methods else None


def api_definition(
    template: Mapping[str, Any],
    physical_ids: Mapping[str, str],
    parameters: Mapping[str, str],
    *,
    region: str,
    account_id: str,
    stage: str,
) -> ApiDefinition:
    """The REST API of a deployed stack: its routes, validators and gateway responses from the
    API's Swagger body in the processed template; throttling from the deployed parameters (the
    stage's method settings, which the emulator does not keep)."""
    resources = template["Resources"]
    (logical_id,) = [
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::ApiGateway::RestApi" and "Body" in resource["Properties"]
    ]
    body = resources[logical_id]["Properties"]["Body"]
    validators = body.get(f"{_EXTENSION}request-validators", {})
    routes, functions = [], set()
    for resource_path, operations in body["paths"].items():
        methods: dict[str, list[str]] = {}
        for name, operation in operations.items():
            method = _ANY if name == f"{_EXTENSION}any-method" else name.upper()
            validator = validators.get(operation.get(f"{_EXTENSION}request-validator"), {})
            methods[method] = [
                parameter["name"]
                for parameter in operation.get("parameters", [])
                if parameter.get("in") == "header"
                and parameter.get("required")
                and validator.get("validateRequestParameters")
            ]
            functions.add(_integration_function(operation[f"{_EXTENSION}integration"]))
        routes.append(Route(resource_path, methods))
    (function_id,) = functions
    responses = {
        kind: {
            "statusCode": str(response["statusCode"]),
            "template": response.get("responseTemplates", {}).get("application/json", ""),
        }
        for kind, response in body.get(f"{_EXTENSION}gateway-responses", {}).items()
    }
    return ApiDefinition(
        api_id=physical_ids[logical_id],
        stage=stage,
        region=region,
        account_id=account_id,
        function=physical_ids[function_id],
        routes=routes,
        gateway_responses=responses,
        rate_limit=float(parameters[RATE_LIMIT_PARAMETER]),
        burst_limit=int(parameters[BURST_LIMIT_PARAMETER]),
    )


def _integration_function(integration: Mapping[str, Any]) -> str:
    """The logical id of a Lambda proxy integration's function (``${Fn.Arn}`` in its URI)."""
    uri = integration["uri"]
    text = uri["Fn::Sub"] if isinstance(uri, dict) else str(uri)
    found = re.search(r"\$\{(\w+)\.Arn\}", text)
    if found is None:
        raise ValueError(f"not a Lambda proxy integration of this stack: {uri!r}")
    return found.group(1)


# ── The Lambda proxy event ───────────────────────────────────────────────────────────────────


def identity_of(
    principal: Mapping[str, Any] | None,
    *,
    access_key: str | None = None,
    source_ip: str = "127.0.0.1",
    user_agent: str | None = None,
) -> dict[str, Any]:
    """``requestContext.identity`` as API Gateway fills it for an IAM-authenticated caller (an
    assumed role's ``caller`` and ``user`` are ``ROLEID:SESSION``; an IAM user's, its id)."""
    return {
        "cognitoIdentityPoolId": None,
        "accountId": None if principal is None else principal["account_id"],
        "cognitoIdentityId": None,
        "caller": None if principal is None else principal["caller_id"],
        "sourceIp": source_ip,
        "principalOrgId": None,
        "accessKey": access_key,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "userArn": None if principal is None else principal["arn"],
        "userAgent": user_agent,
        "user": None if principal is None else principal["caller_id"],
        "apiKey": None,
        "apiKeyId": None,
    }


def proxy_event(
    method: str,
    path: str,
    *,
    body: str | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    multi_query: Mapping[str, list[str]] | None = None,
    identity: Mapping[str, Any] | None = None,
    base64_encoded: bool = False,
    resource: str = "/{proxy+}",
    path_parameters: Mapping[str, str] | None = None,
    api_id: str = "local",
    stage: str = "local",
    account_id: str = "123456789012",
) -> dict[str, Any]:
    """The event a REST API's Lambda proxy integration receives: ``path`` without the stage,
    ``body`` as the client sent it, ``resource`` the matched path template (``/{proxy+}`` and its
    ``proxy`` parameter by default), ``identity`` over an anonymous caller's."""
    headers = dict(headers or {})
    values = {name: list(v) for name, v in (multi_query or {}).items()} or {
        name: [value] for name, value in (query or {}).items()
    }
    if path_parameters is None and resource == "/{proxy+}":
        path_parameters = {"proxy": path.lstrip("/")}
    request_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {name: v[-1] for name, v in values.items()} or None,
        "multiValueQueryStringParameters": values or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "resourceId": hashlib.sha256(resource.encode()).hexdigest()[:6],
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "path": f"/{stage}{path}",
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "identity": {**identity_of(None, user_agent="payledger-demo"), **(identity or {})},
        },
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


# ── Authentication and authorisation ────────────────────────────────────────────────────────


class Refused(Exception):
    """API Gateway's own answer, before the integration runs."""

    def __init__(self, status: int, error_type: str | None, body: Mapping[str, Any]) -> None:
        super().__init__(f"{status} {error_type}")
        self.status, self.error_type, self.body = status, error_type, dict(body)


def _forbidden(error_type: str, message: str) -> Refused:
    return Refused(403, error_type, {"message": message})


MISSING_TOKEN = ("MissingAuthenticationTokenException", "Missing Authentication Token")
_INVALID_TOKEN = "The security token included in the request is invalid."  # noqa: S105


class PrincipalLookup:
    """The principals of the emulated IAM and STS by access key id, from moto's own process
    (``devstack.motoserver.principal_document``), each kept ``PRINCIPAL_CACHE_S``."""

    def __init__(self, endpoint_url: str) -> None:
        self._endpoint_url = endpoint_url.rstrip("/")
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, access_key_id: str) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(access_key_id)
        if cached is not None and now - cached[0] < PRINCIPAL_CACHE_S:
            return cached[1]
        url = f"{self._endpoint_url}{PRINCIPAL_ROUTE}{quote(access_key_id)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback
                principal: dict[str, Any] | None = json.loads(answer.read())
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
            principal = None
        with self._lock:
            self._cache[access_key_id] = (now, principal)
        return principal


@dataclass(frozen=True, slots=True)
class Authorization:
    """An ``AWS4-HMAC-SHA256`` Authorization header, parsed."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str

    @classmethod
    def parse(cls, header: str) -> Authorization:
        algorithm, _, rest = header.partition(" ")
        fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part.strip())
        for name in ("Credential", "SignedHeaders", "Signature"):
            if algorithm != "AWS4-HMAC-SHA256" or name not in fields:
                raise _forbidden(
                    "IncompleteSignatureException",
                    f"Authorization header requires '{name}' parameter. Authorization={header}",
                )
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            raise _forbidden(
                "IncompleteSignatureException",
                f"Credential should be scoped to a valid region. Authorization={header}",
            )
        return cls(
            access_key_id=scope[0],
            date=scope[1],
            region=scope[2],
            service=scope[3],
            signed_headers=fields["SignedHeaders"].split(";"),
            signature=fields["Signature"],
        )


class _Verifier(SigV4Auth):
    """botocore's SigV4 over exactly the headers the caller signed and the payload hash it
    claimed (checked against the body first)."""

    def __init__(
        self, credentials: Credentials, region: str, signed: list[str], payload_hash: str
    ) -> None:
        super().__init__(credentials, SERVICE, region)
        self._signed, self._payload_hash = signed, payload_hash

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name in self._signed:
            headers[name] = request.headers.get(name, "")
        return headers

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What SigV4 verification reads of an HTTP request."""

    method: str
    raw_path: str  # still percent-encoded, as sent
    query: str
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


def authenticate(
    request: SignedRequest,
    lookup: Callable[[str], dict[str, Any] | None],
    *,
    region: str,
    now: datetime | None = None,
) -> tuple[Authorization, dict[str, Any]]:
    """The caller's principal, when the request is signed as AWS requires with credentials the
    emulated IAM or STS issued and still valid; else API Gateway's 403."""
    header = request.headers.get("authorization")
    if not header:
        raise _forbidden(*MISSING_TOKEN)
    authorization = Authorization.parse(header)
    if authorization.service != SERVICE or authorization.region != region:
        raise _forbidden(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{SERVICE}'. ",
        )
    principal = lookup(authorization.access_key_id)
    token = request.headers.get("x-amz-security-token")
    if principal is None or principal["status"] != "Active" or token != principal["session_token"]:
        raise _forbidden("UnrecognizedClientException", _INVALID_TOKEN)
    now = now or datetime.now(UTC)
    if principal["expiration"] and _timestamp(principal["expiration"], "%Y-%m-%dT%H:%M:%SZ") < now:
        raise _forbidden(
            "ExpiredTokenException", "The security token included in the request is expired"
        )
    _check_signature(request, authorization, principal, region=region, now=now)
    return authorization, principal


def _check_signature(
    request: SignedRequest,
    authorization: Authorization,
    principal: Mapping[str, Any],
    *,
    region: str,
    now: datetime,
) -> None:
    stamp = request.headers.get("x-amz-date", "")
    try:
        signed_at = _timestamp(stamp, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise _forbidden(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ) from None
    if abs((now - signed_at).total_seconds()) > CLOCK_SKEW_S:
        earliest = (now - timedelta(seconds=CLOCK_SKEW_S)).strftime("%Y%m%dT%H%M%SZ")
        raise _forbidden(
            "InvalidSignatureException",
            f"Signature expired: {stamp} is now earlier than {earliest}"
            f" ({now:%Y%m%dT%H%M%SZ} - 5 min.)",
        )
    body_hash = hashlib.sha256(request.body).hexdigest()
    claimed = request.headers.get("x-amz-content-sha256", body_hash)
    missing = [name for name in authorization.signed_headers if name not in request.headers]
    if claimed not in (body_hash, "UNSIGNED-PAYLOAD") or missing:
        raise _forbidden("InvalidSignatureException", _SIGNATURE_MISMATCH)
    aws_request = AWSRequest(
        method=request.method,
        url=f"http://{request.headers.get('host', LOOPBACK)}{request.raw_path}",
        headers={name: request.headers[name] for name in authorization.signed_headers},
        params=parse_qsl(request.query, keep_blank_values=True),
    )
    aws_request.context["timestamp"] = stamp
    credentials = Credentials(
        authorization.access_key_id, principal["secret_access_key"], principal["session_token"]
    )
    verifier = _Verifier(credentials, region, authorization.signed_headers, claimed)
    canonical = verifier.canonical_request(aws_request)
    expected = verifier.signature(verifier.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected, authorization.signature):
        raise _forbidden("InvalidSignatureException", _SIGNATURE_MISMATCH)


def _timestamp(text: str, layout: str) -> datetime:
    return datetime.strptime(text, layout).replace(tzinfo=UTC)


def authorize(principal: Mapping[str, Any], resource_arn: str) -> None:
    """``execute-api:Invoke`` on ``resource_arn`` as IAM decides it over the caller's policies
    (an explicit deny wins; nothing allowing it denies)."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    results = {
        IAMPolicy(policy).is_action_permitted("execute-api:Invoke", resource_arn)
        for policy in principal["policies"]
    }
    if PermissionResult.PERMITTED in results and PermissionResult.DENIED not in results:
        return
    suffix = " with an explicit deny" if PermissionResult.DENIED in results else ""
    message = (
        f"User: {principal['arn']} is not authorized to perform: execute-api:Invoke on"
        f" resource: {resource_arn}{suffix}"
    )
    raise Refused(403, "AccessDeniedException", {"Message": message})


# ── Throttling and the function's sandboxes ──────────────────────────────────────────────────


class TokenBucket:
    """API Gateway's throttle: ``burst`` requests at once, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self._rate, self._burst, self._clock = rate, burst, clock
        self._tokens, self._at = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class WorkerPool:
    """Sandboxes of one function: one invocation each at a time, the most recently used idle
    one first (warm), a new one while fewer than ``size_max`` exist, else wait for one."""

    def __init__(self, make: Callable[[], FunctionWorker], *, size_max: int = WORKERS_MAX) -> None:
        self._make, self._size_max = make, size_max
        self._idle: list[FunctionWorker] = []
        self._all: list[FunctionWorker] = []
        self._invoked: set[FunctionWorker] = set()
        self._available = threading.Condition()

    def invoke(self, event: Mapping[str, Any]) -> Invocation:
        with self._available:
            while not self._idle and len(self._all) >= self._size_max:
                self._available.wait()
            if self._idle:
                worker = self._idle.pop()
            else:
                worker = self._make()
                self._all.append(worker)
        # Lambda's init phase (importing the handler) has a limit of its own: a sandbox's first
        # invocation may take that long on top of the function's timeout.
        cold = worker.pid is None or worker not in self._invoked
        timeout_s = worker.target.timeout_s + INIT_TIMEOUT_S if cold else None
        try:
            return worker.invoke(event, timeout_s=timeout_s)
        finally:
            with self._available:
                self._invoked.add(worker)
                self._idle.append(worker)
                self._available.notify()

    def start(self) -> WorkerPool:
        with self._available:
            worker = self._make().start()
            self._all.append(worker)
            self._idle.append(worker)
        return self

    def stop(self) -> None:
        with self._available:
            workers, self._all, self._idle = self._all, [], []
            self._invoked.clear()
        for worker in workers:
            worker.stop()


# ── The HTTP side ────────────────────────────────────────────────────────────────────────────


@dataclass
class Gateway:
    """The WSGI application serving ``definition`` (stage prefix ``/STAGE``)."""

    definition: ApiDefinition
    invoke: Callable[[dict[str, Any]], Invocation]
    lookup: Callable[[str], dict[str, Any] | None]
    buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request_id = str(uuid.uuid4())
        try:
            status, headers, body = self.handle(environ, request_id)
        except Refused as refused:
            status, body = refused.status, json.dumps(refused.body).encode()
            headers = {"Content-Type": "application/json"}
            if refused.error_type:
                headers["x-amzn-ErrorType"] = refused.error_type
        headers = {**headers, "x-amzn-RequestId": request_id}
        start_response(f"{status} {_reason(status)}", list(headers.items()))
        return [body]

    def handle(
        self, environ: Mapping[str, Any], request_id: str
    ) -> tuple[int, dict[str, str], bytes]:
        definition = self.definition
        method = str(environ["REQUEST_METHOD"]).upper()
        raw_uri = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "/")
        raw_path, _, query = raw_uri.partition("?")
        path = unquote(raw_path)
        prefix = f"/{definition.stage}"
        if not (path == prefix or path.startswith(prefix + "/")):
            raise _forbidden(*MISSING_TOKEN)
        found = definition.route(method, path.removeprefix(prefix) or "/")
        if found is None:
            raise _forbidden(*MISSING_TOKEN)
        route, path_parameters = found
        headers = _headers(environ)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        signed = SignedRequest(method, raw_path, query, headers, body)
        authorization, principal = authenticate(signed, self.lookup, region=definition.region)
        resource_path = path.removeprefix(prefix).lstrip("/")
        authorize(
            principal,
            f"arn:aws:execute-api:{definition.region}:{definition.account_id}:"
            f"{definition.api_id}/{definition.stage}/{method}/{resource_path}",
        )
        self._validate(route, method, headers, request_id)
        self._throttle(route, method, request_id)
        event = proxy_event(
            method,
            path.removeprefix(prefix) or "/",
            body=_body_text(body),
            headers=_capitalized(headers),
            multi_query=_multi_query(query),
            identity=identity_of(
                principal,
                access_key=authorization.access_key_id,
                source_ip=str(environ.get("REMOTE_ADDR", LOOPBACK)),
                user_agent=headers.get("user-agent"),
            ),
            base64_encoded=not _is_text(body),
            resource=route.resource,
            path_parameters=path_parameters,
            api_id=definition.api_id,
            stage=definition.stage,
            account_id=definition.account_id,
        )
        return _integration_response(self.invoke(event))

    def _validate(
        self, route: Route, method: str, headers: Mapping[str, str], request_id: str
    ) -> None:
        required = route.methods[_method_of(route, method) or _ANY]
        missing = [name for name in required if not headers.get(name.lower())]
        if missing:
            message = f"Missing required request parameters: [{', '.join(missing)}]"
            raise self._gateway_response("BAD_REQUEST_PARAMETERS", 400, message, request_id)

    def _throttle(self, route: Route, method: str, request_id: str) -> None:
        key = (method, route.resource)
        with self._lock:
            bucket = self.buckets.get(key)
            if bucket is None:
                rate, burst = self.definition.rate_limit, self.definition.burst_limit
                bucket = self.buckets[key] = TokenBucket(rate, burst)
        if not bucket.take():
            raise self._gateway_response("THROTTLED", 429, "Too Many Requests", request_id)

    def _gateway_response(self, kind: str, status: int, message: str, request_id: str) -> Refused:
        """The template's gateway response of ``kind`` (AWS's default when it declares none)."""
        response = self.definition.gateway_responses.get(kind)
        if response is None:
            return Refused(status, None, {"message": message})
        text = (
            response["template"]
            .replace("$context.error.validationErrorString", message)
            .replace("$context.error.message", message)
            .replace("$context.requestId", request_id)
        )
        return Refused(int(response["statusCode"]), None, json.loads(text))


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers, names lower-cased."""
    headers = {
        name[5:].replace("_", "-").lower(): str(value)
        for name, value in environ.items()
        if name.startswith("HTTP_")
    }
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = str(environ[name])
    return headers


def _capitalized(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names in their usual case (WSGI keeps no case; HTTP names ignore it)."""
    return {
        "-".join(part.capitalize() for part in name.split("-")): v for name, v in headers.items()
    }


def _multi_query(query: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(name, []).append(value)
    return values


def _is_text(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _body_text(body: bytes) -> str | None:
    if not body:
        return None
    return body.decode("utf-8") if _is_text(body) else base64.b64encode(body).decode()


def _integration_response(invocation: Invocation) -> tuple[int, dict[str, str], bytes]:
    """The function's proxy result as HTTP; a failed invocation or a malformed result is API
    Gateway's 502."""
    result = invocation.result
    if invocation.failed or not isinstance(result, dict) or "statusCode" not in result:
        return 502, {"Content-Type": "application/json"}, b'{"message": "Internal server error"}'
    headers = {name: values[-1] for name, values in (result.get("multiValueHeaders") or {}).items()}
    headers.update({name: str(value) for name, value in (result.get("headers") or {}).items()})
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    headers.setdefault("Content-Type", "application/json")
    return int(result["statusCode"]), headers, payload


# ── The process ──────────────────────────────────────────────────────────────────────────────


class GatewayServer:
    """A ``Gateway`` served on loopback by a thread; ``url`` is the API's base URL."""

    def __init__(self, gateway: Gateway, *, port: int = 0) -> None:
        self.gateway = gateway
        self._server: BaseWSGIServer = _bind(gateway, port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/{self.gateway.definition.stage}"

    def start(self) -> GatewayServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _bind(gateway: Gateway, port: int) -> BaseWSGIServer:
    """A threaded server on ``port``, or on a free one when it is taken (a restarted gateway
    keeps its URL when it can)."""
    try:
        return make_server(LOOPBACK, port, gateway, threaded=True)
    except OSError:
        if port == 0:
            raise
        return make_server(LOOPBACK, 0, gateway, threaded=True)


def function_pool(
    target: FunctionTarget,
    *,
    endpoint_url: str,
    region: str,
    database_url: str | None,
    log_path: Path | None = None,
) -> WorkerPool:
    """Sandboxes of the API function with its deployed environment (``devstack.functions``)."""
    environment = function_environment(
        target, endpoint_url=endpoint_url, region=region, database_url=database_url
    )
    return WorkerPool(lambda: FunctionWorker(target, environment, log_path=log_path))


def gateway_for(
    home: Path,
    *,
    rate_limit: float | None = None,
    burst_limit: int | None = None,
) -> tuple[Gateway, WorkerPool]:
    """The gateway of the local stack under ``home`` and the pool serving it (not started);
    ``rate_limit`` and ``burst_limit`` replace the deployed throttling."""
    from dataclasses import replace

    from devstack.runtime import LOGS_DIRECTORY, load_config

    config = load_config(home)
    definition = read_definition(home)
    definition = replace(
        definition,
        rate_limit=definition.rate_limit if rate_limit is None else rate_limit,
        burst_limit=definition.burst_limit if burst_limit is None else burst_limit,
    )
    pool = function_pool(
        config.function(definition.function),
        endpoint_url=config.endpoint_url,
        region=config.region,
        database_url=config.database_url,
        log_path=home / LOGS_DIRECTORY / f"{definition.function}.log",
    )
    return Gateway(definition, pool.invoke, PrincipalLookup(config.endpoint_url)), pool


def read_definition(home: Path) -> ApiDefinition:
    return ApiDefinition.from_dict(json.loads((home / DEFINITION_FILE).read_text(encoding="utf-8")))


def write_definition(home: Path, definition: ApiDefinition) -> None:
    home.mkdir(parents=True, exist_ok=True)
    text = json.dumps(definition.to_dict(), indent=1)
    (home / DEFINITION_FILE).write_text(text, encoding="utf-8")


def read_status(home: Path) -> dict[str, Any] | None:
    path = home / STATUS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def main(argv: list[str]) -> None:
    home = Path(argv[1])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    gateway, pool = gateway_for(home)
    pool.start()
    server = GatewayServer(gateway, port=gateway.definition.port).start()
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    status = {"pid": os.getpid(), "port": server.port, "url": server.url}
    temporary = home / f"{STATUS_FILE}.tmp"
    temporary.write_text(json.dumps(status), encoding="utf-8")
    os.replace(temporary, home / STATUS_FILE)
    try:
        stopped.wait()
    finally:
        server.stop()
        pool.stop()


if __name__ == "__main__":
    main(sys.argv)
