// A verbatim copy of a credit leg (a valid MAC: the engine cannot tell it from the original) must not
// credit the to account twice: the to task keeps a credited mark per (from, transferId) in its transfers
// store. Driven through the TopologyTestDriver, including a task restored from its changelogs (another
// instance taking it over) and a transaction that aborted after the credit (the mark goes with it).
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { creditedKey, dedupKey } from '../../../src/bank/stores.ts';
import type { OutputRecord } from '../../../src/topology/task-graph.ts';
import { accountIds, Bank, crossTaskPair, DAY_MS, START_MS, TOPICS } from './harness.ts';

let bank: Bank;
let from: string;
let to: string;

beforeEach(async () => {
  bank = new Bank();
  [from, to] = crossTaskPair(bank.driver, 'acc');
  await bank.open(from);
  await bank.open(to);
  await bank.deposit('fund', from, '100.00');
  bank.clear();
});

afterEach(() => bank.driver.close());

/** The credit legs written to the credits topic so far. */
function creditLegs(): OutputRecord[] {
  return bank.driver.records(TOPICS.credits).filter((r) => r.value?.toString('utf8').includes('"leg":"credit"'));
}

/** Writes a copy of `leg` at the end of its credits partition, headers and all (as anyone with write access could). */
async function replay(leg: OutputRecord): Promise<void> {
  await bank.driver.pipeRaw(leg.topic, leg.partition, leg.key, leg.value, leg.timestamp, leg.headers);
}

async function transfer(transferId: string, amount: string): Promise<void> {
  await bank.send({ type: 'transfer', transferId, from, to, amount, currency: 'EUR' });
}

describe('credit legs applied at most once', () => {
  test('should send an exact copy of an applied credit leg to the DLQ and move no money when it is replayed', async () => {
    await transfer('t-1', '30.00');
    expect(bank.completed().map((r) => r.key)).toEqual(['t-1']);
    const [leg] = creditLegs();
    const settles = bank.driver.records(TOPICS.credits).length;

    await replay(leg!);

    expect(await bank.balance(to)).toEqual({ balance: '3000', inFlight: '0' });
    expect(await bank.balance(from)).toEqual({ balance: '7000', inFlight: '0' });
    expect(bank.completed()).toEqual([]);
    expect(bank.failed()).toEqual([]);
    // No second settle leg: only the copy itself was added to the credits topic.
    expect(bank.driver.records(TOPICS.credits).length).toBe(settles + 1);
    const letters = bank.dlq();
    expect(letters).toHaveLength(1);
    expect(letters[0]!.value).toEqual(leg!.value);
    expect(letters[0]!.headers['bankstream.error']!.toString()).toMatch(
      /credit leg for transfer t-1 from .* was already applied .*: a copy of it, not applied again/,
    );
  });

  test("should keep the credited mark apart from the from task's dedup entry when both accounts share a store", async () => {
    expect(creditedKey(from, 't-1')).not.toBe(dedupKey(from, 't-1'));
    await transfer('t-1', '30.00');
    const marks = await bank.dedupEntries<{ status: string; decidedAt: number }>();
    expect(marks.get(creditedKey(from, 't-1'))).toMatchObject({ status: 'completed', decidedAt: START_MS });
    expect(marks.get(dedupKey(from, 't-1'))).toMatchObject({ status: 'completed' });
  });

  test('should refuse a copy of a refused credit leg even when the account has been opened since', async () => {
    const [lateTo] = accountIds(bank.driver, 'late', 1, (partition) => partition !== bank.driver.partitionOf(from));
    await bank.send({ type: 'transfer', transferId: 't-2', from, to: lateTo!, amount: '10.00', currency: 'EUR' });
    expect(bank.failed().map((r) => r.value['code'])).toEqual(['account_not_found']);
    const [leg] = creditLegs();
    await bank.open(lateTo!);
    bank.clear();

    await replay(leg!);

    expect(await bank.balance(lateTo!)).toEqual({ balance: '0', inFlight: '0' });
    expect(await bank.balance(from)).toEqual({ balance: '10000', inFlight: '0' });
    expect(bank.dlq()[0]!.headers['bankstream.error']!.toString()).toMatch(/was already refused/);
  });

  test('should still refuse the copy when the to task was restored from its changelogs', async () => {
    await transfer('t-1', '30.00');
    const [leg] = creditLegs();
    await bank.driver.restartTask(leg!.partition);
    expect(await bank.balance(to)).toEqual({ balance: '3000', inFlight: '0' });
    bank.clear();

    await replay(leg!);

    expect(await bank.balance(to)).toEqual({ balance: '3000', inFlight: '0' });
    expect(bank.completed()).toEqual([]);
    expect(bank.dlq()).toHaveLength(1);
  });

  test('should apply a retried credit leg once when the transaction that applied it aborted', async () => {
    // The credit's transaction aborts: the to task is back at what it had committed before it (the
    // writes, balance and mark, go with the abort), and the settle leg it sent never reached the from
    // task, which is back at what its debit committed (one balances and one transfers record).
    const toTask = bank.driver.partitionOf(to);
    const fromTask = bank.driver.partitionOf(from);
    const toCommitted = bank.driver.changelogPosition(toTask);
    const beforeDebit = bank.driver.changelogPosition(fromTask);
    const afterDebit = new Map(
      [...beforeDebit].map(([store, count]) => [store, store === 'accounts' ? count : count + 1]),
    );
    await transfer('t-1', '30.00');
    const [leg] = creditLegs();
    await bank.driver.restartTask(toTask, toCommitted);
    await bank.driver.restartTask(fromTask, afterDebit);
    expect(await bank.balance(to)).toEqual({ balance: '0', inFlight: '0' });
    expect(await bank.balance(from)).toEqual({ balance: '7000', inFlight: '3000' });
    bank.clear();

    await replay(leg!);

    expect(await bank.balance(to)).toEqual({ balance: '3000', inFlight: '0' });
    expect(bank.completed().map((r) => r.key)).toEqual(['t-1']);
    expect(bank.dlq()).toEqual([]);
    expect(await bank.balance(from)).toEqual({ balance: '7000', inFlight: '0' });
    // And a further copy is refused.
    await replay(leg!);
    expect(await bank.balance(to)).toEqual({ balance: '3000', inFlight: '0' });
    expect(bank.dlq()).toHaveLength(1);
  });

  test('should expire the credited mark with its segment like any final dedup entry when the retention has passed', async () => {
    await transfer('t-1', '30.00');
    expect((await bank.dedupEntries()).has(creditedKey(from, 't-1'))).toBe(true);
    // Kept for the whole retention (7 days)...
    await bank.driver.advanceWallClockTime(7 * DAY_MS - 60_000);
    expect((await bank.dedupEntries()).has(creditedKey(from, 't-1'))).toBe(true);
    // ...and gone with its segment, at most one segment (half the retention) later.
    await bank.driver.advanceWallClockTime(3.5 * DAY_MS + 60_000);
    await bank.driver.advanceWallClockTime(DAY_MS);
    expect((await bank.dedupEntries()).has(creditedKey(from, 't-1'))).toBe(false);
  });
});

describe('credit legs applied at most once (property)', () => {
  test('should move exactly the money of each transfer once whatever legs are copied back, and when', async () => {
    const step = fc.oneof(
      fc.record({
        kind: fc.constant('transfer' as const),
        toIndex: fc.nat(2),
        cents: fc.integer({ min: 1, max: 500 }),
      }),
      fc.record({ kind: fc.constant('replay' as const), legIndex: fc.nat() }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 25 }), async (steps) => {
        const local = new Bank();
        try {
          const ids = accountIds(
            local.driver,
            'p',
            4,
            (partition, chosen) => chosen.length === 0 || partition !== local.driver.partitionOf(chosen[0]!),
          );
          const [source, ...targets] = ids as [string, ...string[]];
          for (const id of ids) await local.open(id);
          await local.deposit('fund', source, '1000.00');
          const expected = new Map<string, bigint>([[source, 100_000n]]);
          let transfers = 0;
          for (const s of steps) {
            if (s.kind === 'transfer') {
              const to = targets[s.toIndex % targets.length]!;
              await local.send({
                type: 'transfer',
                transferId: `t-${transfers++}`,
                from: source,
                to,
                amount: (s.cents / 100).toFixed(2),
                currency: 'EUR',
              });
              expected.set(source, expected.get(source)! - BigInt(s.cents));
              expected.set(to, (expected.get(to) ?? 0n) + BigInt(s.cents));
            } else {
              const legs = local.driver.records(TOPICS.credits);
              if (legs.length > 0) {
                const leg = legs[s.legIndex % legs.length]!;
                await local.driver.pipeRaw(leg.topic, leg.partition, leg.key, leg.value, leg.timestamp, leg.headers);
              }
            }
          }
          for (const id of ids) expect((await local.balance(id))?.balance ?? '0').toBe(String(expected.get(id) ?? 0n));
          expect((await local.balance(source))?.inFlight).toBe('0');
          expect(local.completed().filter((r) => r.value['type'] === 'transfer')).toHaveLength(transfers);
          expect(local.failed()).toEqual([]);
        } finally {
          local.driver.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});
