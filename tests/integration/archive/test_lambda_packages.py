"""The archive and compaction functions run with what their Lambda packages hold.

``make build-ArchiveFunction`` / ``build-CompactFunction`` package pyarrow (and, for compaction,
DuckDB) but neither numpy, pandas, awswrangler nor the PostgreSQL driver (their 250 MB budget):
here both handlers archive and compact a day on the moto server in a process where importing
any of those fails, so a dependency slipping onto their import path breaks this test, not a
deployment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from devstack.template import create_bucket

REPO_ROOT = Path(__file__).resolve().parents[3]
NOT_PACKAGED = ("numpy", "pandas", "awswrangler", "psycopg", "psycopg_binary")
TIMEOUT_S = 120

SCRIPT = """
import importlib.abc, json, sys

class NotPackaged(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in NOT_PACKAGED:
            raise ImportError(f"{name} is not in the function's package")
        return None

sys.meta_path.insert(0, NotPackaged())

from handlers import archive, compact
from tests.archive_events import ledger_history
from tests.kinesis_events import KinesisShard, change_record, kinesis_event
from tests.lambda_context import FakeLambdaContext

events = ledger_history(payments=4).events()
shard = KinesisShard()
records = [change_record(event, shard) for event in events]
for start in range(0, len(records), 5):
    response = archive.handler(kinesis_event(records[start : start + 5]), FakeLambdaContext("a"))
    assert response == {"batchItemFailures": []}, response
days = sorted({event.recorded_at[:10] for event in events})
context = FakeLambdaContext("c", memory_limit_in_mb=512)
passes = [compact.handler({"day": day}, context)["passes"] for day in days]
loaded = sorted(name for name in sys.modules if name.split(".")[0] in NOT_PACKAGED)
print(json.dumps({"events": len(events), "passes": passes, "loaded": loaded}))
"""


def test_archive_and_compaction_run_without_what_their_packages_leave_out(
    moto_endpoint: str, s3_client: Any
) -> None:
    bucket = f"archive-{uuid.uuid4().hex[:12]}"
    create_bucket(s3_client, "ArchiveBucket", bucket)
    environment = dict(
        os.environ,
        AWS_ENDPOINT_URL=moto_endpoint,
        ARCHIVE_BUCKET=bucket,
        POWERTOOLS_METRICS_NAMESPACE="PayledgerTest",
    )
    done = subprocess.run(
        [sys.executable, "-c", f"NOT_PACKAGED = {NOT_PACKAGED!r}\n{SCRIPT}"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["loaded"] == []
    assert result["events"] > 0
    written = [
        files for passes in result["passes"] for one in passes for files in one["files_written"]
    ]
    assert written, result["passes"]
