-- Holds (two-phase transfers, issue #23; src/bank/README-BANK.md "Holds").
--
-- 1. Their outcomes are transactions rows like any other (history): `hold` (placed, or failed),
--    `post_hold`, `void_hold` (each its own transferId) and `hold_expiry` (transfer_id = the hold's id,
--    no command). All four name from and to, as a transfer does. Only a completed `post_hold` moves
--    posted balances (from -= amount, to += amount); placing, voiding and expiring a hold move none.
ALTER TABLE transactions DROP CONSTRAINT transactions_type_check;
ALTER TABLE transactions ADD CONSTRAINT transactions_type_check
  CHECK (type IN ('deposit', 'withdrawal', 'transfer', 'hold', 'post_hold', 'void_hold', 'hold_expiry'));
ALTER TABLE transactions DROP CONSTRAINT transactions_completed_complete;
ALTER TABLE transactions ADD CONSTRAINT transactions_completed_complete CHECK (status = 'FAILED' OR (
  type IS NOT NULL AND amount > 0 AND currency IS NOT NULL AND requested_at IS NOT NULL AND (
    (type IN ('transfer', 'hold', 'post_hold', 'void_hold', 'hold_expiry')
      AND from_account IS NOT NULL AND to_account IS NOT NULL AND account_id IS NULL)
    OR (type IN ('deposit', 'withdrawal') AND account_id IS NOT NULL AND from_account IS NULL AND to_account IS NULL))));

-- 2. One row per hold, identified as the processor identifies it: (from_account, hold_id). Its outcomes
--    reach the sink on different partitions (key = each command's transferId), so in any order: each
--    outcome fills what it knows, and a resolution (posted / voided / expired) is never undone by the
--    later-arriving `pending` row. A hold resolves at most once, so two resolutions never compete.
CREATE TABLE holds (
  from_account   text          NOT NULL CHECK (from_account <> ''),
  hold_id        text          NOT NULL CHECK (hold_id <> ''),
  to_account     text          NOT NULL,
  amount         money_amount  NOT NULL CHECK (amount > 0),
  currency       currency_code NOT NULL,
  status         text          NOT NULL CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
  posted_amount  money_amount  CHECK (posted_amount > 0),
  expires_at     timestamptz,
  placed_at      timestamptz,
  resolved_at    timestamptz,
  resolved_by    text,
  updated_at     timestamptz   NOT NULL DEFAULT now(),
  PRIMARY KEY (from_account, hold_id),
  CONSTRAINT holds_posted_has_amount CHECK ((status = 'posted') = (posted_amount IS NOT NULL)),
  CONSTRAINT holds_resolved_has_time CHECK ((status = 'pending') = (resolved_at IS NULL))
);
CREATE INDEX holds_to_idx ON holds (to_account, hold_id);
CREATE INDEX holds_pending_deadline_idx ON holds (expires_at) WHERE status = 'pending';
