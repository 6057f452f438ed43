// Hold expiry (README-BANK "Holds: expiry"): a wall-clock punctuator expires the holds whose deadline has
// passed, deadline first, at most `HOLD_EXPIRIES_PER_PUNCTUATION_MAX` per run (the rest wait for the next
// run), so one punctuation's work is bounded however many holds fall due at once.
import { holdKey, loadKeys } from './hold-store.ts';
import { expireHold, type HoldTask } from './holds.ts';

export const HOLD_EXPIRIES_PER_PUNCTUATION_MAX = 200;

/** One run: expires up to `limit` holds due at the task's clock; returns how many it expired. */
export async function expireDueHolds(
  task: HoldTask,
  timestampMs: number,
  limit = HOLD_EXPIRIES_PER_PUNCTUATION_MAX,
): Promise<number> {
  task.out.begin(null, null, timestampMs, {});
  const nowMs = task.out.nowMs;
  const due = await task.holds.due(nowMs, limit);
  if (due.length === 0) return 0;
  // The reads below are synchronous: load their keys first, as prefetch does for records.
  await loadKeys(
    task.holds.store,
    due.map((entry) => holdKey(entry.from, entry.holdId)),
  );
  await loadKeys(
    task.stores.balances,
    due.map((entry) => entry.from),
  );
  let expired = 0;
  for (const { from, holdId, key } of due) {
    const row = task.holds.hold(from, holdId);
    if (row?.status === 'pending' && row.expiresAtMs <= nowMs) {
      expireHold(task, holdId, row);
      expired += 1;
    } else {
      // An index entry left behind (its hold resolved or gone) cannot block the ones after it.
      task.holds.store.delete(key);
    }
  }
  return expired;
}
