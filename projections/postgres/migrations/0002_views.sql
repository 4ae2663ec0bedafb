-- What people query: balances (now and as of any time), the daily merchant summary, agent
-- decisions. Views bind their tables when created, and the function uses a SQL-standard body
-- (BEGIN ATOMIC), so both keep reading this schema's tables whatever the caller's search_path.
-- Days are UTC. Sums of bigint amounts are numeric: exact, never overflowing.

-- Each posting line's effect on the pending and posted balances (ledger/domain/postings.py):
-- pending adds to pending; post_pending moves from pending to posted; void_pending removes from
-- pending; posted adds to posted.
CREATE VIEW posting_effects AS
SELECT
    l.account,
    l.currency,
    l.direction,
    l.recorded_at,
    CASE l.phase
        WHEN 'pending' THEN l.amount_minor
        WHEN 'post_pending' THEN -l.amount_minor
        WHEN 'void_pending' THEN -l.amount_minor
        ELSE 0
    END AS pending_minor,
    CASE l.phase
        WHEN 'post_pending' THEN l.amount_minor
        WHEN 'posted' THEN l.amount_minor
        ELSE 0
    END AS posted_minor
FROM postings AS l;

-- Per account and currency; net = debit - credit, so nets sum to zero per currency.
CREATE VIEW account_balances AS
SELECT
    e.account,
    e.currency,
    coalesce(sum(e.pending_minor) FILTER (WHERE e.direction = 'debit'), 0) AS pending_debit_minor,
    coalesce(sum(e.pending_minor) FILTER (WHERE e.direction = 'credit'), 0) AS pending_credit_minor,
    coalesce(sum(CASE e.direction WHEN 'debit' THEN e.pending_minor ELSE -e.pending_minor END), 0)
        AS pending_net_minor,
    coalesce(sum(e.posted_minor) FILTER (WHERE e.direction = 'debit'), 0) AS posted_debit_minor,
    coalesce(sum(e.posted_minor) FILTER (WHERE e.direction = 'credit'), 0) AS posted_credit_minor,
    coalesce(sum(CASE e.direction WHEN 'debit' THEN e.posted_minor ELSE -e.posted_minor END), 0)
        AS posted_net_minor
FROM posting_effects AS e
GROUP BY e.account, e.currency;

-- The same columns for one account, counting the lines recorded at or before `at`.
CREATE FUNCTION account_balance_as_of(account text, at timestamptz)
RETURNS TABLE (
    account text,
    currency text,
    pending_debit_minor numeric,
    pending_credit_minor numeric,
    pending_net_minor numeric,
    posted_debit_minor numeric,
    posted_credit_minor numeric,
    posted_net_minor numeric
)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT
        e.account,
        e.currency,
        coalesce(sum(e.pending_minor) FILTER (WHERE e.direction = 'debit'), 0),
        coalesce(sum(e.pending_minor) FILTER (WHERE e.direction = 'credit'), 0),
        coalesce(
            sum(CASE e.direction WHEN 'debit' THEN e.pending_minor ELSE -e.pending_minor END), 0
        ),
        coalesce(sum(e.posted_minor) FILTER (WHERE e.direction = 'debit'), 0),
        coalesce(sum(e.posted_minor) FILTER (WHERE e.direction = 'credit'), 0),
        coalesce(
            sum(CASE e.direction WHEN 'debit' THEN e.posted_minor ELSE -e.posted_minor END), 0
        )
    FROM posting_effects AS e
    WHERE e.account = account_balance_as_of.account
      AND e.recorded_at <= account_balance_as_of.at
    GROUP BY e.account, e.currency
    ORDER BY e.currency;
END;

-- Per merchant, UTC day and currency: payments initiated (by creation day) and the volume and
-- count of authorizations, captures, refunds and settlements (by the day each was recorded,
-- measured on their debit lines).
CREATE VIEW merchant_daily_summary AS
WITH facts AS (
    SELECT
        p.merchant_id,
        (p.created_at AT TIME ZONE 'UTC')::date AS day,
        p.currency,
        'PaymentInitiated' AS kind,
        p.payment_id AS fact_id,
        p.amount_minor
    FROM payments AS p
    UNION ALL
    SELECT
        p.merchant_id,
        (l.recorded_at AT TIME ZONE 'UTC')::date,
        l.currency,
        l.event_type,
        l.event_id,
        l.amount_minor
    FROM postings AS l
    JOIN payments AS p ON p.payment_id = l.payment_id
    WHERE l.direction = 'debit'
      AND l.event_type IN
          ('PaymentAuthorized', 'PaymentCaptured', 'PaymentRefunded', 'PaymentSettled')
)
SELECT
    f.merchant_id,
    f.day,
    f.currency,
    count(DISTINCT f.fact_id) FILTER (WHERE f.kind = 'PaymentInitiated') AS initiated_count,
    coalesce(sum(f.amount_minor) FILTER (WHERE f.kind = 'PaymentInitiated'), 0)
        AS initiated_minor,
    count(DISTINCT f.fact_id) FILTER (WHERE f.kind = 'PaymentAuthorized') AS authorized_count,
    coalesce(sum(f.amount_minor) FILTER (WHERE f.kind = 'PaymentAuthorized'), 0)
        AS authorized_minor,
    count(DISTINCT f.fact_id) FILTER (WHERE f.kind = 'PaymentCaptured') AS captured_count,
    coalesce(sum(f.amount_minor) FILTER (WHERE f.kind = 'PaymentCaptured'), 0) AS captured_minor,
    count(DISTINCT f.fact_id) FILTER (WHERE f.kind = 'PaymentRefunded') AS refunded_count,
    coalesce(sum(f.amount_minor) FILTER (WHERE f.kind = 'PaymentRefunded'), 0) AS refunded_minor,
    count(DISTINCT f.fact_id) FILTER (WHERE f.kind = 'PaymentSettled') AS settled_count,
    coalesce(sum(f.amount_minor) FILTER (WHERE f.kind = 'PaymentSettled'), 0) AS settled_minor
FROM facts AS f
GROUP BY f.merchant_id, f.day, f.currency;

-- Per agent, action, decision and UTC day (decision is null for actions other than RiskAssessed).
CREATE VIEW agent_decisions AS
SELECT
    a.agent_id,
    a.action,
    a.decision,
    (a.occurred_at AT TIME ZONE 'UTC')::date AS day,
    count(*) AS action_count,
    avg(a.score) AS score_average
FROM agent_actions AS a
GROUP BY a.agent_id, a.action, a.decision, (a.occurred_at AT TIME ZONE 'UTC')::date;
