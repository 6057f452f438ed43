// The sink and holds (issue #23): the outcomes the bank topology really emits for holds (placed, posted
// partly, voided, expired, still pending, failed), produced to the real broker in reverse order, end in
// Postgres as one holds row each, history rows, and posted balances equal to the processor's.
import { describe, expect, it } from 'vitest';
import { Bank, crossTaskPair, TOPICS } from '../../unit/bank/harness.ts';
import { query } from '../support/postgres.ts';
import { createTestProducer, endOffsets, type Message } from './fixtures.ts';
import { onCleanup, type Setup, setUp, startSink, waitFor } from './support.ts';

const MINUTE = 60_000;

async function caughtUp(setup: Setup): Promise<boolean> {
  const ends = await endOffsets([setup.topics.completed, setup.topics.failed, setup.topics.audit]);
  const rows = await query<{ topic: string; partition: number; next_offset: string }>(
    setup.config.databaseUrl,
    'SELECT topic, partition, next_offset FROM sink_offsets WHERE group_id = $1',
    [setup.config.sinkGroupId],
  );
  const stored = new Map(rows.map((row) => [`${row.topic}:${row.partition}`, BigInt(row.next_offset)]));
  return [...ends].every(([key, end]) => end === 0n || stored.get(key) === end);
}

/** Runs a hold scenario on the topology (no broker) and returns its outputs and final balances. */
async function holdScenario(): Promise<{ bank: Bank; a: string; b: string }> {
  const bank = new Bank();
  const [a, b] = crossTaskPair(bank.driver, 'sink-hold');
  await bank.open(a);
  await bank.open(b);
  await bank.deposit('d-1', a, '100.00');
  const hold = (id: string, amount: string, timeoutMs = 10 * MINUTE) =>
    bank.send({ type: 'hold', transferId: id, from: a, to: b, amount, currency: 'EUR', timeoutMs });
  await hold('h-1', '40.00');
  await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from: a, amount: '25.00', currency: 'EUR' });
  await hold('h-2', '10.00');
  await bank.send({ type: 'void_hold', transferId: 'v-2', holdId: 'h-2', from: a });
  await hold('h-3', '5.00', MINUTE);
  await bank.driver.advanceWallClockTime(MINUTE);
  await hold('h-4', '7.00');
  await hold('h-5', '500.00');
  await bank.send({ type: 'post_hold', transferId: 'p-5', holdId: 'h-5', from: a });
  return { bank, a, b };
}

function messages(bank: Bank, setup: Setup): Message[] {
  const topics: Array<[string, string]> = [
    [TOPICS.completed, setup.topics.completed],
    [TOPICS.failed, setup.topics.failed],
    [TOPICS.audit, setup.topics.audit],
  ];
  return topics.flatMap(([from, to]) =>
    bank.driver
      .records(from)
      .map((r) => ({ topic: to, key: r.key?.toString('utf8') ?? '', value: r.value!.toString('utf8') })),
  );
}

describe('PostgresSink with holds', () => {
  it('should keep one holds row per hold, its history and the posted balances when the outcomes arrive in reverse order', async () => {
    const setup = await setUp('sink-holds');
    const { bank, a, b } = await holdScenario();
    const all = messages(bank, setup);
    const producer = await createTestProducer(`${setup.config.appId}-producer`, setup.topics);
    onCleanup(() => producer.close());
    // Reversed: every resolution reaches Postgres before the outcome that placed its hold.
    await producer.produce([...all].reverse(), { perTransaction: 5, abortEvery: 2 });
    await startSink(setup.config).start();
    await waitFor('the sink to catch up', () => caughtUp(setup));
    const url = setup.config.databaseUrl;
    const holds = await query<Record<string, string | null>>(
      url,
      `SELECT hold_id, from_account, to_account, amount::text, status, posted_amount::text, resolved_by,
              expires_at IS NOT NULL AS has_deadline, placed_at IS NOT NULL AS placed, resolved_at IS NOT NULL AS resolved
         FROM holds ORDER BY hold_id`,
    );
    expect(holds).toEqual([
      {
        hold_id: 'h-1',
        from_account: a,
        to_account: b,
        amount: '40.00',
        status: 'posted',
        posted_amount: '25.00',
        resolved_by: 'p-1',
        has_deadline: true,
        placed: true,
        resolved: true,
      },
      {
        hold_id: 'h-2',
        from_account: a,
        to_account: b,
        amount: '10.00',
        status: 'voided',
        posted_amount: null,
        resolved_by: 'v-2',
        has_deadline: true,
        placed: true,
        resolved: true,
      },
      {
        hold_id: 'h-3',
        from_account: a,
        to_account: b,
        amount: '5.00',
        status: 'expired',
        posted_amount: null,
        resolved_by: null,
        has_deadline: true,
        placed: true,
        resolved: true,
      },
      {
        hold_id: 'h-4',
        from_account: a,
        to_account: b,
        amount: '7.00',
        status: 'pending',
        posted_amount: null,
        resolved_by: null,
        has_deadline: true,
        placed: true,
        resolved: false,
      },
    ]);
    const accounts = await query<{ id: string; balance: string }>(
      url,
      'SELECT id, balance::text FROM accounts ORDER BY id',
    );
    expect(new Map(accounts.map((r) => [r.id, r.balance]))).toEqual(
      new Map([
        [a, '75.00'],
        [b, '25.00'],
      ]),
    );
    const history = await query<{ transfer_id: string; type: string; status: string; failure_code: string | null }>(
      url,
      'SELECT transfer_id, type, status, failure_code FROM transactions ORDER BY transfer_id, type',
    );
    expect(history.map((r) => [r.transfer_id, r.type, r.status, r.failure_code])).toEqual([
      ['d-1', 'deposit', 'COMPLETED', null],
      ['h-1', 'hold', 'COMPLETED', null],
      ['h-2', 'hold', 'COMPLETED', null],
      ['h-3', 'hold', 'COMPLETED', null],
      ['h-3', 'hold_expiry', 'COMPLETED', null],
      ['h-4', 'hold', 'COMPLETED', null],
      ['h-5', 'hold', 'FAILED', 'insufficient_funds'],
      ['p-1', 'post_hold', 'COMPLETED', null],
      ['p-5', 'post_hold', 'FAILED', 'hold_not_found'],
      ['v-2', 'void_hold', 'COMPLETED', null],
    ]);
    const rejects = await query<{ n: string }>(url, 'SELECT count(*)::text AS n FROM sink_rejects');
    expect(rejects[0]!.n).toBe('0');
    // The processor's posted balances, for the same accounts.
    expect((await bank.balance(a))?.balance).toBe('7500');
    expect((await bank.balance(b))?.balance).toBe('2500');
  }, 120_000);
});
