"""S3 digest store: the digest bucket of template.yaml, versioned, with Object Lock in compliance
mode (DESIGN §8).

Object Lock keeps every version of every object for the retention period; it cannot stop anyone
with ``s3:PutObject`` from adding a new version over a key, or a delete marker. So this store:
- writes only with ``If-None-Match: *`` (a key is written once; a second writer gets ``False``)
  and an explicit SHA-256 checksum, which S3 verifies on receipt and which Object Lock requires
  (a PUT to a locked bucket needs a Content-MD5 or checksum header);
- reads the first version ever written under a key, and counts the versions and delete markers
  under it: more than one means someone wrote over it, which ``verify --digests`` reports;
- lists digest numbers from every version and delete marker, so a deleted-looking digest still
  counts as taken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from ledger.integrity.digests import DIGEST_PREFIX, DigestStore, StoredObject, digest_number_of

LIST_PAGES_MAX = 10_000
# Another conditional write to the key is in flight (409): it will win or fail on its own.
_TAKEN_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


class S3DigestStore(DigestStore):
    """``client`` is a boto3 S3 client created once per process by the caller."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket
        self.location = f"s3://{bucket}"

    def numbers(self) -> list[int]:
        numbers = set()
        for entry in self._versions(DIGEST_PREFIX):
            number = digest_number_of(entry["Key"])
            if number is not None:
                numbers.add(number)
        return sorted(numbers)

    def read(self, key: str) -> StoredObject | None:
        entries = [entry for entry in self._versions(key) if entry["Key"] == key]
        versions = [entry for entry in entries if "ETag" in entry]  # delete markers have none
        if not versions:
            return None
        # Listed newest first (LastModified has only second resolution): the last is the first.
        first = versions[-1]
        response = self._call(
            self._client.get_object, Bucket=self._bucket, Key=key, VersionId=first["VersionId"]
        )
        return StoredObject(response["Body"].read(), len(entries))

    def put_new(self, key: str, data: bytes) -> bool:
        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=data,
                IfNoneMatch="*",
                # botocore computes the SHA-256 and sends it with x-amz-sdk-checksum-algorithm,
                # the header Object Lock asks for (a precomputed x-amz-checksum-sha256 alone
                # is refused for want of it).
                ChecksumAlgorithm="SHA256",
                ContentType="application/gzip" if key.endswith(".gz") else "application/json",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _TAKEN_CODES:
                return False
            exc.add_note(f"PutObject {key} on digest bucket {self._bucket!r}")
            raise
        return True

    def _versions(self, prefix: str) -> Iterator[dict[str, Any]]:
        """Every version and delete marker whose key starts with ``prefix``."""
        arguments: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix}
        for _ in range(LIST_PAGES_MAX):
            response = self._call(self._client.list_object_versions, **arguments)
            yield from response.get("Versions", [])
            yield from response.get("DeleteMarkers", [])
            if not response.get("IsTruncated"):
                return
            arguments["KeyMarker"] = response["NextKeyMarker"]
            arguments["VersionIdMarker"] = response["NextVersionIdMarker"]
        raise RuntimeError(f"listing {prefix} in {self._bucket} took over {LIST_PAGES_MAX} pages")

    def _call(self, operation: Callable[..., Any], **arguments: Any) -> Any:
        try:
            return operation(**arguments)
        except ClientError as exc:
            exc.add_note(f"S3 call on digest bucket {self._bucket!r} failed")
            raise
