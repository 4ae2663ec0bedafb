-- Payment metrics per tumbling window of the events' Kinesis stream, written by the analytics
-- Lambda (handlers/analytics.py; the figures are defined in projections/analytics.py).
-- Lambda windows are per shard, so a row is one (window, merchant, currency, shard); a retried
-- window replaces its own rows, and the views below sum across shards.
-- Both tables grow with time: partitioned by month, partitions created by the writer before it
-- writes into a month (no DEFAULT partition, as for postings). Amount sums are numeric: a
-- window's sum of 64-bit amounts can exceed 64 bits.

CREATE TABLE payment_metrics_minute (
    window_start         timestamptz NOT NULL,
    merchant_id          text COLLATE "C" NOT NULL,
    -- '' holds the events that carry no currency (RiskAssessed, PaymentFailed).
    currency             text COLLATE "C" NOT NULL,
    shard_id             text COLLATE "C" NOT NULL,
    window_end           timestamptz NOT NULL,
    event_count          integer NOT NULL CHECK (event_count >= 0),
    initiated_count      integer NOT NULL CHECK (initiated_count >= 0),
    initiated_minor      numeric NOT NULL CHECK (initiated_minor >= 0),
    authorized_count     integer NOT NULL CHECK (authorized_count >= 0),
    authorized_minor     numeric NOT NULL CHECK (authorized_minor >= 0),
    risk_approved_count  integer NOT NULL CHECK (risk_approved_count >= 0),
    risk_review_count    integer NOT NULL CHECK (risk_review_count >= 0),
    risk_declined_count  integer NOT NULL CHECK (risk_declined_count >= 0),
    failed_count         integer NOT NULL CHECK (failed_count >= 0),
    captured_count       integer NOT NULL CHECK (captured_count >= 0),
    captured_minor       numeric NOT NULL CHECK (captured_minor >= 0),
    refunded_count       integer NOT NULL CHECK (refunded_count >= 0),
    refunded_minor       numeric NOT NULL CHECK (refunded_minor >= 0),
    duplicate_count      integer NOT NULL CHECK (duplicate_count >= 0),
    agent_decisions      jsonb NOT NULL,   -- {"<agent id>": {"<decision>": count}}
    -- false: the window gave up its duplicate digests to stay under Lambda's state limit, so a
    -- duplicate within it may be counted twice.
    deduplicated         boolean NOT NULL,
    updated_at           timestamptz NOT NULL,
    PRIMARY KEY (window_start, merchant_id, currency, shard_id),
    CHECK (window_end > window_start)
) PARTITION BY RANGE (window_start);
CREATE INDEX payment_metrics_minute_merchant ON payment_metrics_minute (merchant_id, window_start);

-- Which window (and shard) counted each event, so that a copy delivered in a later window or on
-- another shard is not counted again. Keyed by recorded_at too: a partitioned table's key must
-- hold its partition column, and a copy has the same recorded_at as its original. Only copies
-- need it: a month's partition can be dropped once the stream can no longer redeliver it
-- (Kinesis retention, at most 365 days).
CREATE TABLE payment_metric_events (
    event_id      text COLLATE "C" NOT NULL,
    recorded_at   timestamptz NOT NULL,
    window_start  timestamptz NOT NULL,
    shard_id      text COLLATE "C" NOT NULL,
    PRIMARY KEY (event_id, recorded_at)
) PARTITION BY RANGE (recorded_at);

-- Per window and merchant, across shards and currencies: counts, outcomes and the rates
-- (percent, two decimals; null without any outcome).
CREATE VIEW merchant_metrics_minute AS
SELECT
    m.window_start,
    m.window_end,
    m.merchant_id,
    sum(m.event_count) AS event_count,
    sum(m.initiated_count) AS initiated_count,
    sum(m.authorized_count) AS authorized_count,
    sum(m.risk_approved_count) AS risk_approved_count,
    sum(m.risk_review_count) AS risk_review_count,
    sum(m.risk_declined_count) AS risk_declined_count,
    sum(m.failed_count) AS failed_count,
    sum(m.risk_declined_count + m.failed_count) AS declined_count,
    sum(m.captured_count) AS captured_count,
    sum(m.refunded_count) AS refunded_count,
    round(
        100.0 * sum(m.authorized_count)
        / nullif(sum(m.authorized_count + m.risk_declined_count + m.failed_count), 0),
        2
    ) AS approval_rate,
    round(
        100.0 * sum(m.risk_declined_count + m.failed_count)
        / nullif(sum(m.authorized_count + m.risk_declined_count + m.failed_count), 0),
        2
    ) AS decline_rate,
    sum(m.duplicate_count) AS duplicate_count,
    bool_and(m.deduplicated) AS deduplicated,
    count(DISTINCT m.shard_id) AS shard_count
FROM payment_metrics_minute AS m
GROUP BY m.window_start, m.window_end, m.merchant_id;

-- Per window, merchant and currency, across shards: counts and amounts (minor units).
CREATE VIEW merchant_currency_metrics_minute AS
SELECT
    m.window_start,
    m.window_end,
    m.merchant_id,
    m.currency,
    sum(m.initiated_count) AS initiated_count,
    sum(m.initiated_minor) AS initiated_minor,
    sum(m.authorized_count) AS authorized_count,
    sum(m.authorized_minor) AS authorized_minor,
    sum(m.captured_count) AS captured_count,
    sum(m.captured_minor) AS captured_minor,
    sum(m.refunded_count) AS refunded_count,
    sum(m.refunded_minor) AS refunded_minor
FROM payment_metrics_minute AS m
WHERE m.currency <> ''
GROUP BY m.window_start, m.window_end, m.merchant_id, m.currency;

-- Per window, merchant, agent and decision, across shards and currencies.
CREATE VIEW agent_decisions_minute AS
SELECT
    m.window_start,
    m.window_end,
    m.merchant_id,
    agent.key AS agent_id,
    decision.key AS decision,
    sum(decision.value::bigint) AS decision_count
FROM payment_metrics_minute AS m
CROSS JOIN LATERAL jsonb_each(m.agent_decisions) AS agent
CROSS JOIN LATERAL jsonb_each_text(agent.value) AS decision
GROUP BY m.window_start, m.window_end, m.merchant_id, agent.key, decision.key;
