// Hold expiry (README-BANK "Holds: expiry"): a wall-clock punctuator expires the holds whose deadline has
// passed, deadline first, at most `HOLD_EXPIRIES_PER_PUNCTUATION_MAX` per run (the rest wait for the next
// run), so one punctuation's work is bounded however many holds fall due at once. The same run forgets
// resolved holds and to-side marks one dedup retention after they resolved ("Holds: retention"), at most
// as many again, so the holds store stays bounded by the holds of one retention.
import { holdKey, loadKeys, markKey } from './hold-store.ts';
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
  await forgetResolved(task, nowMs, limit);
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

/**
 * Deletes the rows and marks whose retention has passed (with their forget entries); returns how many.
 * A row or mark that is live again (the id reused after a forget, a post still settling) is kept: a
 * settling post is looked at again one retention later, a reused id has its own entry.
 */
export async function forgetResolved(task: HoldTask, nowMs: number, limit: number): Promise<number> {
  const entries = await task.holds.forgettable(nowMs, limit);
  if (entries.length === 0) return 0;
  const keyOf = (e: { of: 'h' | 'c'; from: string; holdId: string }) =>
    e.of === 'h' ? holdKey(e.from, e.holdId) : markKey(e.from, e.holdId);
  await loadKeys(task.holds.store, entries.map(keyOf));
  let forgotten = 0;
  for (const entry of entries) {
    task.holds.store.delete(entry.key);
    if (entry.of === 'h') {
      const row = task.holds.hold(entry.from, entry.holdId);
      if (row === undefined || row.status === 'pending' || row.status === 'opening') continue;
      if (row.settling === true) {
        task.holds.forgetLater('h', entry.from, entry.holdId, nowMs);
        continue;
      }
    } else {
      const mark = task.holds.mark(entry.from, entry.holdId);
      if (mark === undefined || mark.status === 'pending') continue;
    }
    task.holds.store.delete(keyOf(entry));
    forgotten += 1;
  }
  return forgotten;
}
