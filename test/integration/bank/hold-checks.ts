// The holds invariants of a run (issue #23), from the outcome topics and the balances changelog: every
// placed hold ends in exactly one of posted / voided / expired, or is still pending before its deadline;
// each resolution outcome exists once; a post moves at most the held amount; a failed hold resolves never;
// every account's pendingDebits / pendingCredits equal the sum of its open holds.

export interface HoldLife {
  holdId: string;
  from: string;
  to: string;
  /** Held amount, minor units. */
  amount: bigint;
  expiresAtMs: number;
  /** The completed resolution outcomes (post_hold / void_hold / hold_expiry) naming it. */
  resolutions: Array<Record<string, string>>;
}

export interface HoldsSeen {
  /** Placed holds (completed, status pending) by holdId. */
  placed: Map<string, HoldLife>;
  /** hold_expiry outcomes: answered under the hold's id, so they are no decision of a command. */
  expiries: Array<Record<string, string>>;
}

const cents = (amount: string) => BigInt(amount.replace('.', ''));

/** Hold ids are unique per run in the workloads, so holdId alone names a hold here. */
export function holdsSeen(completed: Array<Record<string, string>>): HoldsSeen {
  const placed = new Map<string, HoldLife>();
  const expiries: Array<Record<string, string>> = [];
  for (const o of completed) {
    if (o.type === 'hold' && o.status === 'pending')
      placed.set(o.transferId!, {
        holdId: o.transferId!,
        from: o.from!,
        to: o.to!,
        amount: cents(o.amount!),
        expiresAtMs: Date.parse(o.expiresAt!),
        resolutions: [],
      });
  }
  for (const o of completed) {
    if (o.type === 'hold_expiry') expiries.push(o);
    if (o.type !== 'hold_expiry' && o.type !== 'post_hold' && o.type !== 'void_hold') continue;
    const hold = placed.get(o.holdId!);
    if (hold) hold.resolutions.push(o);
    else placed.set(`?${o.holdId}`, { ...orphan(o), resolutions: [o] });
  }
  return { placed, expiries };
}

function orphan(o: Record<string, string>): Omit<HoldLife, 'resolutions'> {
  return { holdId: o.holdId!, from: o.from!, to: o.to!, amount: 0n, expiresAtMs: 0 };
}

/** Every hold invariant that does not hold, one line each; `nowMs` decides "still pending before its deadline". */
export function holdViolations(
  seen: { completed: Array<Record<string, string>>; failed: Array<Record<string, string>> },
  balances: Map<string, { pendingDebits?: string; pendingCredits?: string }>,
  nowMs: number,
): string[] {
  const problems: string[] = [];
  const { placed } = holdsSeen(seen.completed);
  const pendingDebits = new Map<string, bigint>();
  const pendingCredits = new Map<string, bigint>();
  const add = (map: Map<string, bigint>, key: string, n: bigint) => map.set(key, (map.get(key) ?? 0n) + n);
  for (const [key, hold] of placed) {
    if (key.startsWith('?')) {
      problems.push(`hold ${hold.holdId}: resolved (${hold.resolutions[0]!.status}) but never placed`);
      continue;
    }
    const [first, ...more] = hold.resolutions;
    if (more.length > 0)
      problems.push(
        `hold ${hold.holdId}: ${hold.resolutions.length} resolutions (${hold.resolutions.map((r) => r.status).join(', ')})`,
      );
    if (first === undefined) {
      if (hold.expiresAtMs <= nowMs)
        problems.push(`hold ${hold.holdId}: still pending ${nowMs - hold.expiresAtMs} ms after its deadline`);
      add(pendingDebits, hold.from, hold.amount);
      add(pendingCredits, hold.to, hold.amount);
      continue;
    }
    if (first.from !== hold.from || first.to !== hold.to)
      problems.push(
        `hold ${hold.holdId}: resolved between ${first.from} → ${first.to}, placed ${hold.from} → ${hold.to}`,
      );
    if (first.type === 'post_hold') {
      if (cents(first.heldAmount!) !== hold.amount)
        problems.push(`hold ${hold.holdId}: posted with heldAmount ${first.heldAmount}, placed for ${hold.amount}`);
      const posted = cents(first.amount!);
      if (posted <= 0n || posted > hold.amount)
        problems.push(`hold ${hold.holdId}: posted ${first.amount}, held ${hold.amount} minor units`);
    } else if (cents(first.amount!) !== hold.amount)
      problems.push(`hold ${hold.holdId}: ${first.status} ${first.amount}, held ${hold.amount} minor units`);
  }
  // A hold that failed (insufficient funds, a refused `to`) has no resolution; one placed twice is a duplicate.
  for (const f of seen.failed)
    if (f.type === 'hold' && placed.has(f.transferId!) && f.code !== 'idempotency_conflict')
      problems.push(`hold ${f.transferId}: both placed and failed (${f.code})`);
  const accounts = new Set([...balances.keys(), ...pendingDebits.keys(), ...pendingCredits.keys()]);
  for (const account of accounts) {
    const row = balances.get(account);
    const [debits, credits] = [BigInt(row?.pendingDebits ?? '0'), BigInt(row?.pendingCredits ?? '0')];
    if (debits !== (pendingDebits.get(account) ?? 0n))
      problems.push(`${account}: pendingDebits ${debits}, open holds from it ${pendingDebits.get(account) ?? 0n}`);
    if (credits !== (pendingCredits.get(account) ?? 0n))
      problems.push(`${account}: pendingCredits ${credits}, open holds to it ${pendingCredits.get(account) ?? 0n}`);
  }
  return problems;
}

/** Counts for a report: placed holds by how they ended. */
export function holdCounts(completed: Array<Record<string, string>>, nowMs: number): Record<string, number> {
  const counts: Record<string, number> = { placed: 0, posted: 0, partial: 0, voided: 0, expired: 0, pending: 0 };
  for (const [key, hold] of holdsSeen(completed).placed) {
    if (key.startsWith('?')) continue;
    counts['placed']!++;
    const first = hold.resolutions[0];
    const end =
      first === undefined
        ? hold.expiresAtMs > nowMs
          ? 'pending'
          : 'overdue'
        : first.status === 'posted' && first.amount !== first.heldAmount
          ? 'partial'
          : first.status!;
    counts[end] = (counts[end] ?? 0) + 1;
  }
  return counts;
}

/** Open holds whose deadline passed: the run is not quiet until the punctuator expired them. */
export function overdueHolds(completed: Array<Record<string, string>>, nowMs: number): number {
  let n = 0;
  for (const [key, hold] of holdsSeen(completed).placed)
    if (!key.startsWith('?') && hold.resolutions.length === 0 && hold.expiresAtMs <= nowMs) n++;
  return n;
}

/** How the posts and voids were answered: `completed` or the failure code, with their counts. */
export function resolveAnswers(seen: {
  completed: Array<Record<string, string>>;
  failed: Array<Record<string, string>>;
}): Record<string, number> {
  const answers: Record<string, number> = {};
  const count = (o: Record<string, string>, answer: string) => {
    if (o.type !== 'post_hold' && o.type !== 'void_hold') return;
    const key = `${o.type} ${answer}`;
    answers[key] = (answers[key] ?? 0) + 1;
  };
  for (const o of seen.completed) count(o, 'completed');
  for (const o of seen.failed) count(o, o.code ?? '?');
  return answers;
}
