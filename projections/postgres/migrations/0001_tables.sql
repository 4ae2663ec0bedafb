-- The tables the stream projection (projections/postgres/projection.py) writes.
-- Applied with search_path set to the target schema: every name lands in that schema, so a
-- rebuild can create a fresh schema beside the live one. Amounts are bigint minor units.
-- Identifiers are opaque: they compare byte by byte (COLLATE "C"), which is what their indexes
-- need and much cheaper than a linguistic collation.

-- One row per payment: its state after `version`, as ledger.domain.payment.evolve folds it
-- (every field of PaymentState is here, so the projection resumes the fold from this row).
CREATE TABLE payments (
    payment_id       text COLLATE "C" PRIMARY KEY,
    merchant_id      text COLLATE "C" NOT NULL,
    customer_id      text COLLATE "C" NOT NULL,
    currency          text NOT NULL,
    status            text NOT NULL,
    amount_minor      bigint NOT NULL,
    authorized_minor  bigint NOT NULL,
    captured_minor    bigint NOT NULL,
    released_minor    bigint NOT NULL,
    refunded_minor    bigint NOT NULL,
    settled_minor     bigint NOT NULL,
    settled           boolean NOT NULL,
    risk_decision     text,
    risk_score        numeric,
    processor         text,
    hold_until        timestamptz,
    description       text,
    failure_reason    text,
    version           integer NOT NULL CHECK (version > 0),
    head_hash         text NOT NULL,
    created_at        timestamptz NOT NULL,  -- recorded_at of version 1
    updated_at        timestamptz NOT NULL   -- recorded_at of `version` (deterministic on replay)
) WITH (fillfactor = 80);  -- room for HOT updates: no indexed column ever changes
CREATE INDEX payments_merchant_created ON payments (merchant_id, created_at);

-- One row per posting line of every money-moving event, partitioned by month of recorded_at.
-- Monthly partitions are created by the projection before it writes into a month (there is no
-- DEFAULT partition: a row in it would block creating its month's partition later).
CREATE TABLE postings (
    event_id     text COLLATE "C" NOT NULL,
    line          integer NOT NULL CHECK (line > 0),
    payment_id   text COLLATE "C" NOT NULL,
    version       integer NOT NULL,
    account      text COLLATE "C" NOT NULL,
    direction     text NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    currency      text NOT NULL,
    phase         text NOT NULL
                  CHECK (phase IN ('pending', 'post_pending', 'void_pending', 'posted')),
    event_type    text NOT NULL,
    recorded_at   timestamptz NOT NULL,
    PRIMARY KEY (event_id, line, recorded_at)
) PARTITION BY RANGE (recorded_at);
CREATE INDEX postings_account_recorded ON postings (account, recorded_at);

-- Every event an agent produced, and every risk assessment whoever made it.
CREATE TABLE agent_actions (
    event_id       text COLLATE "C" PRIMARY KEY,
    payment_id     text COLLATE "C" NOT NULL,
    version         integer NOT NULL,
    agent_kind      text NOT NULL,
    agent_id       text COLLATE "C" NOT NULL,
    agent_model     text,
    agent_version   text,
    action          text NOT NULL,   -- the event type
    decision        text,            -- RiskAssessed: approve | review | decline
    score           numeric,
    reason          text,
    metadata        jsonb NOT NULL,  -- the payload's metadata, or the payload without postings
    correlation_id  text NOT NULL,
    occurred_at     timestamptz NOT NULL
);
CREATE INDEX agent_actions_payment ON agent_actions (payment_id, version);

-- Exactly once: the last version applied per stream, written in the same transaction as the
-- rows above. A version at or below it is a duplicate; only version + 1 is applied.
CREATE TABLE projection_positions (
    stream_id  text COLLATE "C" PRIMARY KEY,
    version     integer NOT NULL CHECK (version > 0),
    event_id    text NOT NULL,
    hash        text NOT NULL,
    updated_at  timestamptz NOT NULL  -- recorded_at of `version` (deterministic on replay)
) WITH (fillfactor = 80);
