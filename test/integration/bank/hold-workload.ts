// Holds mixed into a reproducible workload (issue #23): holds with varied timeouts between random accounts
// (same and different partitions), then, some commands later, what happens to each: a full or partial
// post, a void, a post and a void of the same hold both sent (in either order), two posts, a post routed
// under `to`'s key, a post meant to arrive after the deadline, or nothing (left to expire, or to stay
// pending past the end of the run). Which of the racing commands wins depends on timing and faults, so a
// resolving command may answer any of the hold codes; hold-checks.ts checks that every hold resolved
// exactly once, whichever way.
import type { WorkloadCommand } from './workload.ts';

/** Every answer a post or void can get, depending on which command (or the deadline) came first. */
export const RESOLVE_CODES = [
  'completed',
  'hold_already_posted',
  'hold_already_voided',
  'hold_expired',
  'hold_not_found',
  'hold_not_open',
  'amount_exceeds_hold',
];

/** A hold that stays pending long after any run ends (its deadline is checked not to have passed). */
export const LONG_TIMEOUT_MS = 6 * 3_600_000;

type Scenario =
  | 'post'
  | 'partial'
  | 'void'
  | 'post-void'
  | 'void-post'
  | 'post-twice'
  | 'routed-post'
  | 'routed-void'
  | 'late-post'
  | 'expire'
  | 'over-post'
  | 'open';

const SCENARIOS: Array<[Scenario, number]> = [
  ['post', 0.16],
  ['partial', 0.12],
  ['void', 0.1],
  ['post-void', 0.1],
  ['void-post', 0.08],
  ['post-twice', 0.06],
  ['routed-post', 0.06],
  ['routed-void', 0.04],
  ['late-post', 0.08],
  ['expire', 0.1],
  ['over-post', 0.04],
  ['open', 0.06],
];

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/**
 * Interleaves `holds` holds and what follows them into `commands` (in place, deterministically from rnd).
 * A resolving command lands 1–6 s after its hold at `perSecond` commands a second (a late post 6 s
 * more), so it arrives from before to after the deadlines (1–5 s for holds meant to expire or be posted
 * late, 4–24 s for the others), under whatever fault is on. One that comes before the `to` task accepted
 * a cross-partition hold fails hold_not_open (the hold then expires).
 */
export function mixInHolds(
  commands: WorkloadCommand[],
  options: { accounts: string[]; holds: number; prefix: string; rnd: () => number; perSecond: number },
): void {
  const { accounts, rnd } = options;
  /** A position `seconds` later in the commands, at the rate they are sent. */
  const after = (seconds: number) => seconds * options.perSecond;
  const pick = <T>(list: T[]): T => list[Math.floor(rnd() * list.length)]!;
  const placed: Array<{ at: number; command: WorkloadCommand }> = [];
  const span = Math.max(1, commands.length);
  for (let i = 0; i < options.holds; i++) {
    const holdId = `${options.prefix}-h-${i}`;
    const from = pick(accounts);
    let to = pick(accounts);
    if (to === from) to = accounts[(accounts.indexOf(from) + 1) % accounts.length]!;
    const cents = 100 + Math.floor(rnd() * 3900);
    const amount = money(cents);
    const roll = rnd();
    let acc = 0;
    const scenario = SCENARIOS.find(([, w]) => (acc += w) > roll)?.[0] ?? 'post';
    const timeoutMs =
      scenario === 'open'
        ? LONG_TIMEOUT_MS
        : scenario === 'expire' || scenario === 'late-post'
          ? 1000 + Math.floor(rnd() * 4000)
          : 4000 + Math.floor(rnd() * 20_000);
    const at = rnd() * span;
    placed.push({
      at,
      command: {
        key: from,
        value: json({ type: 'hold', transferId: holdId, from, to, amount, currency: 'EUR', timeoutMs }),
        expect: { kind: 'outcome', transferId: holdId, codes: ['completed', 'insufficient_funds'] },
      },
    });
    let n = 0;
    const later = (key: string, command: Record<string, unknown>, extra = 0) => {
      const transferId = `${holdId}-r${n++}`;
      placed.push({
        at: at + after(1 + extra + rnd() * 5),
        command: {
          key,
          value: json({ ...command, transferId, holdId, from }),
          expect: { kind: 'outcome', transferId, codes: RESOLVE_CODES },
        },
      });
    };
    const post = { type: 'post_hold' };
    const voided = { type: 'void_hold' };
    const partial = { type: 'post_hold', amount: money(1 + Math.floor(rnd() * (cents - 1))), currency: 'EUR' };
    if (scenario === 'post') later(from, post);
    else if (scenario === 'partial') later(from, partial);
    else if (scenario === 'void') later(from, voided);
    else if (scenario === 'post-void' || scenario === 'void-post') {
      // Back to back in the input: the same partition decides them in this order.
      const first = scenario === 'post-void' ? post : voided;
      const second = scenario === 'post-void' ? voided : post;
      const when = at + after(1 + rnd() * 5);
      for (const [k, command] of [first, second].entries()) {
        const transferId = `${holdId}-r${n++}`;
        placed.push({
          at: when + k * 1e-6,
          command: {
            key: from,
            value: json({ ...command, transferId, holdId, from }),
            expect: { kind: 'outcome', transferId, codes: RESOLVE_CODES },
          },
        });
      }
    } else if (scenario === 'post-twice') {
      later(from, partial);
      later(from, post, 1);
    } else if (scenario === 'routed-post') later(to, post);
    else if (scenario === 'routed-void') later(to, voided);
    else if (scenario === 'late-post') later(from, post, 6);
    else if (scenario === 'over-post') later(from, { type: 'post_hold', amount: money(cents + 1), currency: 'EUR' });
  }
  const base = commands.map((command, index) => ({ at: index, command }));
  const merged = [...base, ...placed].sort((a, b) => a.at - b.at);
  commands.splice(0, commands.length, ...merged.map((m) => m.command));
}

function money(cents: number): string {
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
}
