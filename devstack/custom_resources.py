"""CloudFormation custom resources on the emulated AWS, answered by their real functions.

moto 5.2.5's CloudFormation creates a ``Custom::`` resource as CloudFormation does: the stack
stays ``CREATE_IN_PROGRESS`` until the resource's function answers SUCCESS at the stack's
response endpoint (``/cloudformation_<region>/cfnresponse``). It would run the function in
Docker, which the local stack never uses, so the deploy plays CloudFormation's part (DESIGN §9):
for each custom resource it sends the Create event CloudFormation sends, with a ``ResponseURL``
this process serves on loopback, to the real handler in the local function runtime
(``devstack.functions``). A SUCCESS answer is passed on to moto's response endpoint, which
completes the resource; a FAILED answer, or none, fails the deploy with the function's reason, as
it fails a deploy on AWS. (moto skips the ``AWS::CloudFormation::CustomResource`` type, so the
template names its custom resources ``Custom::…``.)
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from devstack.functions import FunctionWorker, function_environment
from devstack.mappings import FunctionTarget

LOOPBACK = "127.0.0.1"
_RELAY_TIMEOUT_S = 30


class CustomResourceError(RuntimeError):
    """A custom resource's function answered FAILED, failed, or never answered."""


@dataclass(frozen=True, slots=True)
class CustomResource:
    """One ``Custom::`` resource of a stack being created: its properties as CloudFormation
    resolved them (``ServiceToken`` is the function's ARN) and that function's configuration."""

    logical_id: str
    resource_type: str
    properties: Mapping[str, Any]
    function: FunctionTarget


class ResponseReceiver:
    """An HTTP server on loopback keeping the body of every PUT, by path: the ``ResponseURL``
    CloudFormation's pre-signed S3 URL stands for."""

    def __init__(self) -> None:
        self._bodies: dict[str, bytes] = {}
        bodies = self._bodies

        class _Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                bodies[self.path.lstrip("/")] = self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((LOOPBACK, 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ResponseReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, key: str) -> str:
        return f"http://{LOOPBACK}:{self._server.server_port}/{key}"

    def response(self, key: str) -> dict[str, Any] | None:
        """The document PUT to ``url(key)``, if any arrived."""
        body = self._bodies.get(key)
        return None if body is None else dict(json.loads(body))


def create_event(
    resource: CustomResource, *, stack_id: str, request_id: str, response_url: str
) -> dict[str, Any]:
    """The Create request CloudFormation sends a custom resource's function."""
    return {
        "RequestType": "Create",
        "ServiceToken": resource.properties["ServiceToken"],
        "ResponseURL": response_url,
        "StackId": stack_id,
        "RequestId": request_id,
        "LogicalResourceId": resource.logical_id,
        "ResourceType": resource.resource_type,
        "ResourceProperties": dict(resource.properties),
    }


def answer_custom_resources(
    resources: list[CustomResource],
    *,
    endpoint_url: str,
    region: str,
    stack_id: str,
    database_url: str | None,
) -> list[dict[str, Any]]:
    """Create every resource of ``resources`` through its function, completing each on the
    emulated CloudFormation; the functions' response documents, in order. Raises
    ``CustomResourceError`` on the first that does not succeed."""
    documents = []
    with ResponseReceiver() as receiver:
        for resource in resources:
            request_id = str(uuid.uuid4())
            event = create_event(
                resource,
                stack_id=stack_id,
                request_id=request_id,
                response_url=receiver.url(request_id),
            )
            environment = function_environment(
                resource.function,
                endpoint_url=endpoint_url,
                region=region,
                database_url=database_url,
            )
            worker = FunctionWorker(resource.function, environment)
            try:
                invocation = worker.invoke(event)
            finally:
                worker.stop()
            document = receiver.response(request_id)
            if document is None:
                error = invocation.error or {"errorMessage": "the function returned"}
                raise CustomResourceError(
                    f"{resource.logical_id}: no response from {resource.function.name}"
                    f" ({error.get('errorType', '')}: {error.get('errorMessage', '')})"
                )
            if document.get("Status") != "SUCCESS":
                raise CustomResourceError(
                    f"{resource.logical_id}: {document.get('Status')}: {document.get('Reason')}"
                )
            _relay(endpoint_url, region, stack_id, document)
            documents.append(document)
    return documents


def _relay(endpoint_url: str, region: str, stack_id: str, document: Mapping[str, Any]) -> None:
    """Give moto's CloudFormation the answer, where its own ResponseURL would have taken it."""
    query = urllib.parse.urlencode({"stack": stack_id})
    request = urllib.request.Request(  # noqa: S310 - the emulated AWS on loopback
        f"{endpoint_url}/cloudformation_{region}/cfnresponse?{query}",
        data=json.dumps(document).encode("utf-8"),
        method="PUT",
        # Without it urllib sends a form's content type and moto routes the body as a form.
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=_RELAY_TIMEOUT_S) as response:  # noqa: S310
        response.read()
