// The holds table (migrations/0004_holds.sql) from the staged completed hold outcomes of one batch.
// A hold's outcomes come on different partitions (each keyed by its own transferId), so they reach the
// sink in any order and any batch: each fills what it knows, a resolution is never undone by the later
// `pending` row, and writing the same outcome again changes nothing (a replay after a crash).
export const UPSERT_HOLDS = `
WITH staged AS (
  SELECT from_account, hold_id, max(to_account) AS to_account, max(held_amount) AS amount, max(currency) AS currency,
         coalesce(max(hold_status) FILTER (WHERE hold_status <> 'pending'), 'pending') AS status,
         max(amount) FILTER (WHERE type = 'post_hold') AS posted_amount,
         max(expires_at) AS expires_at,
         max(completed_at) FILTER (WHERE type = 'hold') AS placed_at,
         max(completed_at) FILTER (WHERE hold_status <> 'pending') AS resolved_at,
         max(transfer_id) FILTER (WHERE type IN ('post_hold', 'void_hold')) AS resolved_by
    FROM sink_stage_outcomes
   WHERE status = 'COMPLETED' AND hold_id IS NOT NULL
   GROUP BY from_account, hold_id
)
INSERT INTO holds AS h (from_account, hold_id, to_account, amount, currency, status, posted_amount, expires_at,
                        placed_at, resolved_at, resolved_by, updated_at)
SELECT from_account, hold_id, to_account, amount, currency, status, posted_amount, expires_at, placed_at,
       resolved_at, resolved_by, now()
  FROM staged ORDER BY from_account, hold_id
ON CONFLICT (from_account, hold_id) DO UPDATE SET
  status = CASE WHEN h.status = 'pending' THEN excluded.status ELSE h.status END,
  posted_amount = coalesce(h.posted_amount, excluded.posted_amount),
  expires_at = coalesce(h.expires_at, excluded.expires_at),
  placed_at = coalesce(h.placed_at, excluded.placed_at),
  resolved_at = coalesce(h.resolved_at, excluded.resolved_at),
  resolved_by = coalesce(h.resolved_by, excluded.resolved_by),
  updated_at = now()`;
