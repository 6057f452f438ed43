-- bankstream read model: users, accounts, transactions, audit_logs (the seed's shape) plus what
-- exactly-once sinking needs. Written by the Postgres sink (src/sinks) from the outcome topics;
-- the stream processor's state stores stay the source of truth for live balances.
--
-- Money: a domain over unconstrained NUMERIC, never float. NUMERIC(38,4) would silently round a
-- fifth decimal place; the domain rejects it instead (ISO 4217 currencies have at most 4 minor
-- digits) and keeps the scale the wire used, so "0.00" reads back as "0.00". The sink validates
-- the same rule before writing, so a bad value becomes a sink_rejects row, never a stuck batch.
CREATE DOMAIN money_amount AS numeric
  CHECK (VALUE IS NULL OR (scale(VALUE) <= 4 AND abs(VALUE) < 1e34));

CREATE DOMAIN currency_code AS char(3)
  CHECK (VALUE IS NULL OR VALUE ~ '^[A-Z]{3}$');

-- password_hash is "scrypt$<N>$<r>$<p>$<salt base64>$<hash base64>" (node:crypto scrypt).
CREATE TABLE users (
  id            text        PRIMARY KEY CHECK (id <> ''),
  name          text        NOT NULL,
  email         text        NOT NULL CHECK (position('@' IN email) > 1),
  role          text        NOT NULL CHECK (role IN ('customer', 'teller', 'admin')),
  password_hash text        NOT NULL CHECK (password_hash ~ '^scrypt\$'),
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- One row per account. Outcomes (transaction_completed) and account events (audit_log) arrive on
-- different topics with no order between them, so a balance change can be sunk before the
-- account_opened event: such a row is "pending" (owner_id, currency, opened_at NULL) until
-- account_opened fills them in. Balances are the sum of applied deltas, which commutes, so the
-- result does not depend on arrival order; for the same reason there is no balance >=
-- -overdraft_limit check here (a debit may be sunk before the credit that preceded it) and
-- account_closed does not overwrite the balance: the processor only closes an account at zero,
-- so once every outcome is sunk a closed account reads 0.00. reconcile checks both at quiet time.
-- owner_id has no foreign key to users: users are managed apart from the stream, and a missing
-- user must not stop the sink.
CREATE TABLE accounts (
  id              text          PRIMARY KEY CHECK (id <> ''),
  owner_id        text,
  currency        currency_code,
  status          text          NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
  overdraft_limit money_amount  NOT NULL DEFAULT 0.00 CHECK (overdraft_limit >= 0),
  balance         money_amount  NOT NULL DEFAULT 0.00,
  opened_at       timestamptz,
  closed_at       timestamptz,
  updated_at      timestamptz   NOT NULL DEFAULT now(),
  CONSTRAINT accounts_pending_all_or_none CHECK (
    (owner_id IS NULL) = (opened_at IS NULL) AND (currency IS NULL) = (opened_at IS NULL)),
  CONSTRAINT accounts_closed_at_iff_closed CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX accounts_owner_idx ON accounts (owner_id);

-- One row per transferId: the first outcome stands. A transfer fills from_account/to_account,
-- a deposit or withdrawal fills account_id. FAILED rows keep what the command carried as far as
-- it is valid (an invalid_amount failure may hold a non-positive amount; a malformed one may hold
-- none); payload keeps the outcome exactly as emitted.
--
-- idempotency_conflict: the processor answers a conflicting duplicate with a transaction_failed
-- record under the SAME transferId while the original outcome stands. Storing it here would
-- either violate the one-row-per-transferId key or replace the original, so the sink writes
-- every idempotency_conflict record to transfer_conflicts instead, whatever the arrival order
-- (completed and failed are different topics, so the conflict may be sunk first). The CHECK
-- below makes that routing a schema rule rather than a convention.
CREATE TABLE transactions (
  transfer_id      text          PRIMARY KEY CHECK (transfer_id <> ''),
  type             text          CHECK (type IN ('deposit', 'withdrawal', 'transfer')),
  account_id       text,
  from_account     text,
  to_account       text,
  amount           money_amount,
  currency         currency_code,
  status           text          NOT NULL CHECK (status IN ('COMPLETED', 'FAILED')),
  failure_code     text          CHECK (failure_code ~ '^[a-z][a-z0-9_]*$'),
  reason           text,
  reference        text,
  requested_at     timestamptz,
  completed_at     timestamptz   NOT NULL,
  source_topic     text          NOT NULL,
  source_partition integer       NOT NULL CHECK (source_partition >= 0),
  source_offset    bigint        NOT NULL CHECK (source_offset >= 0),
  payload          jsonb         NOT NULL,
  sunk_at          timestamptz   NOT NULL DEFAULT now(),
  CONSTRAINT transactions_source_key UNIQUE (source_topic, source_partition, source_offset),
  CONSTRAINT transactions_no_conflict_rows CHECK (failure_code IS DISTINCT FROM 'idempotency_conflict'),
  CONSTRAINT transactions_failed_has_code CHECK ((status = 'FAILED') = (failure_code IS NOT NULL)),
  CONSTRAINT transactions_completed_complete CHECK (status = 'FAILED' OR (
    type IS NOT NULL AND amount > 0 AND currency IS NOT NULL AND requested_at IS NOT NULL AND (
      (type = 'transfer' AND from_account IS NOT NULL AND to_account IS NOT NULL AND account_id IS NULL)
      OR (type <> 'transfer' AND account_id IS NOT NULL AND from_account IS NULL AND to_account IS NULL))))
);
-- Per-account history, newest first, with transfer_id as a stable tie-breaker for keyset paging.
CREATE INDEX transactions_from_history_idx ON transactions (from_account, completed_at, transfer_id)
  WHERE from_account IS NOT NULL;
CREATE INDEX transactions_to_history_idx ON transactions (to_account, completed_at, transfer_id)
  WHERE to_account IS NOT NULL;
CREATE INDEX transactions_account_history_idx ON transactions (account_id, completed_at, transfer_id)
  WHERE account_id IS NOT NULL;

-- Conflicting duplicates (code idempotency_conflict), one row per emitted record. No foreign key
-- to transactions: the original outcome may be sunk later (it is on another topic).
CREATE TABLE transfer_conflicts (
  id               bigserial     PRIMARY KEY,
  transfer_id      text          NOT NULL CHECK (transfer_id <> ''),
  reason           text,
  requested_at     timestamptz,
  completed_at     timestamptz   NOT NULL,
  source_topic     text          NOT NULL,
  source_partition integer       NOT NULL CHECK (source_partition >= 0),
  source_offset    bigint        NOT NULL CHECK (source_offset >= 0),
  payload          jsonb         NOT NULL,
  sunk_at          timestamptz   NOT NULL DEFAULT now(),
  CONSTRAINT transfer_conflicts_source_key UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX transfer_conflicts_transfer_idx ON transfer_conflicts (transfer_id);

-- Audit events. Rows sunk from Kafka carry their source position, unique, so a re-delivered
-- record inserts nothing; rows written by other components (the API) leave all three NULL.
CREATE TABLE audit_logs (
  id               bigserial     PRIMARY KEY,
  event            text          NOT NULL CHECK (event ~ '^[a-z][a-z0-9_]*$'),
  account_id       text,
  transfer_id      text,
  code             text,
  at               timestamptz   NOT NULL,
  payload          jsonb         NOT NULL,
  source_topic     text,
  source_partition integer       CHECK (source_partition >= 0),
  source_offset    bigint        CHECK (source_offset >= 0),
  sunk_at          timestamptz   NOT NULL DEFAULT now(),
  CONSTRAINT audit_logs_source_key UNIQUE (source_topic, source_partition, source_offset),
  CONSTRAINT audit_logs_source_all_or_none CHECK (
    (source_topic IS NULL) = (source_partition IS NULL) AND (source_topic IS NULL) = (source_offset IS NULL))
);
CREATE INDEX audit_logs_account_idx ON audit_logs (account_id, at) WHERE account_id IS NOT NULL;
CREATE INDEX audit_logs_transfer_idx ON audit_logs (transfer_id) WHERE transfer_id IS NOT NULL;
