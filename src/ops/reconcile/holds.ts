// Holds in `bankstream reconcile` (README-BANK "Holds"): every hold the outcome topics placed ends in
// exactly one of posted / voided / expired, or is still pending before its deadline; a post moves at most
// the held amount; each account's pendingDebits / pendingCredits in the stores equal the sum of its open
// holds; the from task's hold row and Postgres `holds` say the same status as the outcomes. Money moved
// by posts is in the balances invariant already (a completed post_hold is a transfer of its amount).
import { currencyDigits, formatMoney, parseMoney } from '../../bank/money.ts';
import { holdKey } from '../../bank/hold-store.ts';
import type { FetchedRecord } from '../../kafka/fetcher.ts';
import {
  type Difference,
  type HoldsCount,
  type OutcomeView,
  type PostgresView,
  type StoreView,
  where,
} from './model.ts';

const RESOLUTION_TYPES: Record<string, string> = { post_hold: 'posted', void_hold: 'voided', hold_expiry: 'expired' };

export function holdId(from: string, id: string): string {
  return JSON.stringify([from, id]);
}

/** A completed hold outcome into the view (placed, posted, voided, expired); the rest are no hold's. */
export function addHoldOutcome(
  view: OutcomeView,
  value: Record<string, unknown>,
  amount: bigint,
  record: FetchedRecord,
): void {
  const { type, from, to, currency, transferId } = value;
  const id = type === 'hold' ? transferId : value.holdId;
  if (typeof from !== 'string' || typeof id !== 'string' || typeof to !== 'string' || typeof currency !== 'string')
    return;
  const key = holdId(from, id);
  const entry = view.holds.get(key) ?? { from, holdId: id, resolutions: [] };
  view.holds.set(key, entry);
  if (type === 'hold') {
    const expiresAtMs = typeof value.expiresAt === 'string' ? Date.parse(value.expiresAt) : Number.NaN;
    entry.placed = { to, amount, currency, expiresAtMs, where: where(record) };
    return;
  }
  const held =
    typeof value.heldAmount === 'string' ? parseMoney(value.heldAmount, currencyDigits(currency) ?? 4) : null;
  entry.resolutions.push({
    status: RESOLUTION_TYPES[type as string]!,
    transferId: String(transferId),
    to,
    amount,
    ...(held?.ok ? { heldAmount: held.minor } : {}),
    where: where(record),
  });
}

export function isHoldOutcome(type: unknown, status: unknown): boolean {
  return (type === 'hold' && status === 'pending') || (typeof type === 'string' && type in RESOLUTION_TYPES);
}

/**
 * The holds checks; `nowMs` − `graceMs` is the latest deadline an open hold may have passed (the
 * expiry punctuator runs every punctuateIntervalMs). Returns the counts of the report.
 */
export function compareHolds(
  views: { stores: StoreView; outcomes: OutcomeView; postgres: PostgresView },
  nowMs: number,
  graceMs: number,
  add: (difference: Difference) => void,
): HoldsCount {
  const { stores, outcomes, postgres } = views;
  const counts: HoldsCount = { placed: 0, posted: 0, voided: 0, expired: 0, pending: 0 };
  const debits = new Map<string, bigint>();
  const credits = new Map<string, bigint>();
  const sum = (map: Map<string, bigint>, key: string, n: bigint) => map.set(key, (map.get(key) ?? 0n) + n);
  for (const [key, hold] of outcomes.holds) {
    const name = `hold ${hold.holdId} of ${hold.from}`;
    const differs = (kind: Difference['kind'], message: string) =>
      add({ kind, accountId: hold.from, transferId: hold.holdId, message: `${name}: ${message}` });
    const { placed, resolutions } = hold;
    const [first, ...more] = resolutions;
    if (placed === undefined) {
      differs('hold_unplaced', `${first?.status} (${first?.where}) but never placed in the outcome topics`);
      continue;
    }
    counts.placed++;
    const money = (n: bigint) => formatMoney(n, currencyDigits(placed.currency) ?? 4);
    if (more.length > 0)
      differs(
        'hold_resolved_twice',
        `${resolutions.length} resolutions: ${resolutions.map((r) => `${r.status} by ${r.transferId} (${r.where})`).join(', ')}`,
      );
    for (const r of resolutions) {
      if (r.to !== placed.to) differs('hold_amount', `${r.status} to ${r.to}, placed to ${placed.to}`);
      if (r.status === 'posted' && (r.amount > placed.amount || r.heldAmount !== placed.amount))
        differs(
          'hold_amount',
          `posted ${money(r.amount)} of ${r.heldAmount === undefined ? '?' : money(r.heldAmount)} held (${r.where}), placed for ${money(placed.amount)}`,
        );
      if (r.status !== 'posted' && r.amount !== placed.amount)
        differs('hold_amount', `${r.status} ${money(r.amount)} (${r.where}), placed for ${money(placed.amount)}`);
    }
    const status = first?.status ?? 'pending';
    counts[status as keyof HoldsCount]++;
    if (first === undefined) {
      sum(debits, hold.from, placed.amount);
      sum(credits, placed.to, placed.amount);
      if (!(placed.expiresAtMs + graceMs > nowMs))
        differs(
          'hold_overdue',
          `still pending, its deadline ${Number.isNaN(placed.expiresAtMs) ? '(unreadable)' : new Date(placed.expiresAtMs).toISOString()} passed`,
        );
    }
    const row = stores.holds.get(holdKey(hold.from, hold.holdId));
    // A resolved hold's row is forgotten one dedup retention after it resolved; an open one never is.
    if (row === undefined ? status === 'pending' : row.status !== status)
      differs('hold_status', `${status} in the outcomes, ${row?.status ?? 'absent'} in the stores`);
    const pgRow = postgres.holds.get(key);
    const posted = first?.status === 'posted' ? money(first.amount) : null;
    if (pgRow === undefined) differs('hold_status', `${status} in the outcomes, absent from Postgres holds`);
    else if (pgRow.status !== status || (posted !== null && !sameDecimal(pgRow.postedAmount, posted)))
      differs(
        'hold_status',
        `${status}${posted === null ? '' : ` ${posted}`} in the outcomes, ${pgRow.status}${pgRow.postedAmount === null ? '' : ` ${pgRow.postedAmount}`} in Postgres holds`,
      );
  }
  for (const [key, row] of postgres.holds)
    if (!outcomes.holds.has(key)) {
      const [from, id] = JSON.parse(key) as [string, string];
      add({
        kind: 'hold_status',
        accountId: from,
        transferId: id,
        message: `hold ${id} of ${from}: ${row.status} in Postgres holds, not in the outcome topics`,
      });
    }
  for (const id of new Set([...stores.balances.keys(), ...debits.keys(), ...credits.keys()])) {
    const row = stores.balances.get(id);
    for (const [field, want] of [
      ['pendingDebits', debits.get(id) ?? 0n],
      ['pendingCredits', credits.get(id) ?? 0n],
    ] as const) {
      const have = BigInt(row?.[field] ?? '0');
      if (have !== want)
        add({
          kind: 'hold_pending',
          accountId: id,
          message: `${id}: ${field} ${have} in the stores, open holds sum to ${want} (minor units)`,
        });
    }
  }
  return counts;
}

function sameDecimal(a: string | null, b: string): boolean {
  if (a === null) return false;
  const norm = (t: string) => {
    const [units = '0', fraction = ''] = t.split('.');
    return `${BigInt(units)}.${fraction.replace(/0+$/, '')}`;
  };
  return norm(a) === norm(b);
}
