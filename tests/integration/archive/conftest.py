"""The archive on both of its backends: a local folder and a bucket on the moto server.

Every test that takes ``storage`` runs against each; ``archive_handler`` is the archive Lambda's
module, imported with the environment the template gives it.
"""

from __future__ import annotations

import importlib
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from archive.local import LocalArchiveStorage
from archive.s3 import S3ArchiveStorage
from archive.storage import ArchiveStorage
from tests.archive_events import LedgerHistory, ledger_history


def _credentials() -> tuple[str, str, str | None]:
    return "testing", "testing", None


@pytest.fixture
def s3_client(moto_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def s3_storage(s3_client: Any) -> S3ArchiveStorage:
    bucket = f"archive-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    return S3ArchiveStorage(s3_client, bucket, _credentials)


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalArchiveStorage:
    return LocalArchiveStorage(tmp_path / "archive")


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> ArchiveStorage:
    name = "local_storage" if request.param == "local" else "s3_storage"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def history() -> LedgerHistory:
    """Twelve payments' events over six days (the events table the archive must equal)."""
    return ledger_history(12)


@pytest.fixture(scope="session")
def archive_handler() -> ModuleType:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARCHIVE_BUCKET", "payledger-archive-unused")
        return importlib.import_module("handlers.archive")
