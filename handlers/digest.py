"""The digest Lambda: on a schedule, the next numbered digest of every stream's chain head
(DESIGN §8, ``ledger.integrity.digests``), written to the Object Lock digest bucket.

Heads come from the payment-state read model (one Scan of one small item per payment) rather than
from the events table (every event of every payment): the read model is the cheap index of heads,
and trust does not depend on it, because every head that is new since the previous digest is
confirmed against the events table (one BatchGetItem per 100 heads: the event at that version
must exist and hash to that head) before it is attested. A head the read model offers that is not
a chain point is refused, logged and counted (``HeadsRefused``): it means the read model is wrong
or was tampered with. The price is freshness: a digest attests what the read model had projected,
seconds behind the events.

Environment: ``EVENTS_TABLE``, ``PAYMENT_STATE_TABLE``, ``DIGEST_BUCKET``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from handlers.bootstrap import (
    build_digest_store,
    build_event_store,
    require_payment_state_reader,
    settings_from_environment,
)
from handlers.observability import make_logger
from ledger.integrity.digests import write_digest

logger = make_logger()
metrics = Metrics()  # namespace from POWERTOOLS_METRICS_NAMESPACE

settings = settings_from_environment()
digests = build_digest_store(settings)
read_model = require_payment_state_reader(settings)
events = build_event_store(settings)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = write_digest(digests, read_model.heads(), events)
    for head, reason in run.refused:
        logger.error("head refused: not a chain point", extra={**head.to_dict(), "reason": reason})
    counts = {
        "DigestsWritten": int(run.digest is not None),
        "HeadsAttested": run.attested,
        "HeadsCarried": run.carried,
        "HeadsPending": run.pending,
        "HeadsRefused": len(run.refused),
    }
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if run.digest is None:
        logger.warning("another run wrote this digest number first; nothing written")
    else:
        logger.info("digest written", extra=run.digest.to_dict())
    return {"digest": None if run.digest is None else run.digest.to_dict(), **counts}
