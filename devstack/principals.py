"""Named principals of the local stack: roles on the emulated IAM, allowed to invoke the local
API, whose credentials the emulated STS issues (``payledger local credentials NAME``).

The local HTTP gateway (``devstack.gateway``) accepts exactly such credentials: it verifies each
request's SigV4 signature against what the emulated IAM and STS hold, and authorises
``execute-api:Invoke`` against the principal's own policies, as API Gateway does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from devstack.functions import local_target
from handlers import bootstrap

ACCOUNT_ID = "123456789012"  # moto's default account: every local resource lives in it
SESSION_DURATION_S = 3600
INVOKE_POLICY_NAME = "invoke-local-api"


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    """Temporary credentials of an assumed role; ``credential_process`` is the JSON shape the
    AWS CLI and SDKs read from a ``credential_process`` command."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: str
    role_arn: str
    region: str

    @property
    def triple(self) -> tuple[str, str, str]:
        return self.access_key_id, self.secret_access_key, self.session_token

    def credential_process(self) -> dict[str, Any]:
        return {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.session_token,
            "Expiration": self.expiration,
        }

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "AWS_REGION": self.region,
        }


def invoke_policy(region: str, api_ids: list[str]) -> dict[str, Any]:
    """``execute-api:Invoke`` on every route and stage of the local REST APIs."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "execute-api:Invoke",
                "Resource": [
                    f"arn:aws:execute-api:{region}:{ACCOUNT_ID}:{api_id}/*" for api_id in api_ids
                ],
            }
        ],
    }


def assume(endpoint_url: str, name: str, *, region: str = "us-east-1") -> IssuedCredentials:
    """Create role ``name`` if needed, allow it to invoke the local API, and assume it."""
    target = local_target(endpoint_url, region)
    iam = bootstrap.aws_client(target, "iam")
    sts = bootstrap.aws_client(target, "sts")
    apigateway = bootstrap.aws_client(target, "apigateway")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    try:
        role_arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role_arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    api_ids = [api["id"] for api in apigateway.get_rest_apis()["items"]]
    iam.put_role_policy(
        RoleName=name,
        PolicyName=INVOKE_POLICY_NAME,
        PolicyDocument=json.dumps(invoke_policy(region, api_ids)),
    )
    answer = sts.assume_role(
        RoleArn=role_arn, RoleSessionName=name, DurationSeconds=SESSION_DURATION_S
    )["Credentials"]
    return IssuedCredentials(
        access_key_id=answer["AccessKeyId"],
        secret_access_key=answer["SecretAccessKey"],
        session_token=answer["SessionToken"],
        expiration=answer["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        role_arn=role_arn,
        region=region,
    )


def issue_credentials(state_or_endpoint: Any, name: str) -> tuple[str, str, str]:
    """(access key id, secret access key, session token) of role ``name`` on the local stack
    (a ``devstack.local.LocalState`` or the emulated AWS's endpoint URL)."""
    if isinstance(state_or_endpoint, str):
        return assume(state_or_endpoint, name).triple
    return assume(state_or_endpoint.endpoint_url, name, region=state_or_endpoint.region).triple
