"""The archive in an S3 bucket (or the emulated S3): keys are object keys.

``client`` is a boto3 S3 client created once per process by the composition root; it honours
``AWS_ENDPOINT_URL``. DuckDB reads the same objects with the same credentials, region and
endpoint (``duckdb_source``). S3 errors propagate as botocore's ``ClientError`` with a note
naming the bucket and key: they are operating failures, and a Lambda retries them whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from archive.storage import DuckDBSource, S3Access, StoredObject

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
DELETE_OBJECTS_MAX = 1_000  # S3 DeleteObjects takes at most 1,000 keys per call
LIST_PAGE_KEYS_MAX = 1_000
_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn")

Credentials = Callable[[], tuple[str, str, str | None]]
"""Returns (access key id, secret access key, session token) valid now."""


class S3ArchiveStorage:
    def __init__(self, client: Any, bucket: str, credentials: Credentials) -> None:
        self._client = client
        self.bucket = bucket
        self._credentials = credentials

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}"

    def list(self, prefix: str, *, limit: int) -> list[StoredObject]:
        found: list[StoredObject] = []
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while len(found) < limit:
            arguments["MaxKeys"] = min(LIST_PAGE_KEYS_MAX, limit - len(found))
            response = self._call(self._client.list_objects_v2, prefix, **arguments)
            found.extend(
                StoredObject(item["Key"], int(item["Size"]))
                for item in response.get("Contents", [])
            )
            if not response.get("IsTruncated"):
                break
            arguments["ContinuationToken"] = response["NextContinuationToken"]
        return found[:limit]

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(
            self._client.put_object,
            key,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=PARQUET_CONTENT_TYPE,
        )

    def put_file(self, key: str, path: Path) -> None:
        # upload_file switches to a multipart upload for large files; the object appears whole.
        self._call(
            self._client.upload_file,
            key,
            str(path),
            self.bucket,
            key,
            ExtraArgs={"ContentType": PARQUET_CONTENT_TYPE},
        )

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), DELETE_OBJECTS_MAX):
            chunk = keys[start : start + DELETE_OBJECTS_MAX]
            response = self._call(
                self._client.delete_objects,
                chunk[0],
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True},
            )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise RuntimeError(
                    f"S3 did not delete {len(errors)} objects of {self.location}, e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )

    @property
    def on_aws(self) -> bool:
        """Whether the client talks to AWS's S3 (not an S3-compatible endpoint such as moto)."""
        host = urlsplit(str(self._client.meta.endpoint_url)).hostname or ""
        return host.endswith(_AWS_HOST_SUFFIXES)

    def duckdb_source(self) -> DuckDBSource:
        key_id, secret, token = self._credentials()
        endpoint = urlsplit(str(self._client.meta.endpoint_url))
        access = S3Access(
            region=str(self._client.meta.region_name),
            key_id=key_id,
            secret=secret,
            session_token=token,
            endpoint=None if self.on_aws else endpoint.netloc,
            use_ssl=endpoint.scheme != "http",
        )
        return DuckDBSource(root_url=f"s3://{self.bucket}/", s3=access)

    def _call(self, operation: Callable[..., Any], key: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return operation(*args, **kwargs)
        except Exception as exc:  # annotated and re-raised, never swallowed
            exc.add_note(f"S3 call on {self.location} ({key}) failed")
            raise
