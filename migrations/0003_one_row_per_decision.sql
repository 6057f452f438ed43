-- The read model is the ledger: one transactions row per outcome record the processor emitted,
-- never one per transferId.
--
-- A transferId is an idempotency key per acted-on account (the command's record key: `from` of a
-- transfer, `accountId` of a deposit or withdrawal), which is where the processor deduplicates. The
-- same transferId can therefore be decided more than once: on two accounts of different partitions,
-- or on the same account again after the dedup retention. The processor applies every one of those
-- decisions, so Postgres must hold every one of them; a primary key on transfer_id made the sink's
-- ON CONFLICT DO NOTHING drop the later ones together with their balance change.
--
-- Uniqueness is now the outcome record's position (source_topic, source_partition, source_offset),
-- already a unique constraint since 0001: it makes the sink's replay after a crash insert nothing
-- twice while two distinct decisions always have two distinct positions. Existing rows keep every
-- column; the new id (filled for them in table order) is the primary key and the history's stable
-- tie-breaker.
ALTER TABLE transactions DROP CONSTRAINT transactions_pkey;
ALTER TABLE transactions ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE transactions ADD CONSTRAINT transactions_pkey PRIMARY KEY (id);

-- The account whose task decided the outcome, the second half of a transfer's identity. NULL only
-- for a failure too malformed to name one.
ALTER TABLE transactions ADD COLUMN acted_account text GENERATED ALWAYS AS (coalesce(account_id, from_account)) STORED;
CREATE INDEX transactions_transfer_idx ON transactions (transfer_id, acted_account, completed_at);

-- History paging: (completed_at, transfer_id, id), newest first; id makes the order total now that
-- a transferId may appear twice in one account's history.
DROP INDEX transactions_from_history_idx;
DROP INDEX transactions_to_history_idx;
DROP INDEX transactions_account_history_idx;
CREATE INDEX transactions_from_history_idx ON transactions (from_account, completed_at, transfer_id, id)
  WHERE from_account IS NOT NULL;
CREATE INDEX transactions_to_history_idx ON transactions (to_account, completed_at, transfer_id, id)
  WHERE to_account IS NOT NULL;
CREATE INDEX transactions_account_history_idx ON transactions (account_id, completed_at, transfer_id, id)
  WHERE account_id IS NOT NULL;

-- A reject is an alarm until an operator resolves it: the record it holds may be money the ledger
-- moved and Postgres does not show. The sink reports unresolved rejects (readiness, metrics) and
-- `bankstream reconcile` names them; set resolved_at (with a note) once the difference is repaired.
ALTER TABLE sink_rejects ADD COLUMN resolved_at timestamptz;
ALTER TABLE sink_rejects ADD COLUMN resolution text;
ALTER TABLE sink_rejects ADD CONSTRAINT sink_rejects_resolution_with_time CHECK (resolution IS NULL OR resolved_at IS NOT NULL);
CREATE INDEX sink_rejects_unresolved_idx ON sink_rejects (source_topic, source_partition, source_offset) WHERE resolved_at IS NULL;
