// A transfer held in flight: the processor driven by hand, legs captured rather than delivered.
import { beforeEach, describe, expect, test } from 'vitest';
import { SINKS } from '../../../src/bank/outcomes.ts';
import { dedupKey } from '../../../src/bank/stores.ts';
import { DAY_MS, ManualTask, START_MS } from './harness.ts';

// acc-a lives here (partition 0); acc-b lives in partition 1.
const owner = (accountId: string) => (accountId === 'acc-b' ? 1 : 0);
// The dedup entry of t-1: keyed by the account it acts on and the transferId.
const T1 = dedupKey('acc-a', 't-1');
const transfer = { type: 'transfer', transferId: 't-1', from: 'acc-a', to: 'acc-b', amount: '30.00', currency: 'EUR' };

let task: ManualTask;
let creditLegs: Array<{ key: unknown; value: unknown }>;
beforeEach(() => {
  task = new ManualTask(owner);
  task.command({ type: 'open_account', accountId: 'acc-a', ownerId: 'u', currency: 'EUR' });
  task.command({ type: 'deposit', transferId: 'fund', accountId: 'acc-a', amount: '100', currency: 'EUR' });
  task.command(transfer);
  creditLegs = task.take(SINKS.credits).map((f) => ({ key: f.key, value: f.value }));
  task.forwarded.length = 0;
});

describe('a transfer in flight', () => {
  test('should hold the amount in flight and send a credit leg keyed by to when to lives elsewhere', () => {
    expect(creditLegs).toEqual([
      {
        key: 'acc-b',
        value: {
          leg: 'credit',
          transferId: 't-1',
          from: 'acc-a',
          to: 'acc-b',
          amount: '30.00',
          currency: 'EUR',
          requestedAt: new Date(START_MS).toISOString(),
        },
      },
    ]);
    expect(task.stores.balances.get('acc-a')).toEqual({ balance: '7000', inFlight: '3000' });
    expect(task.stores.transfers.logical().get(T1)).toMatchObject({
      status: 'in_flight',
      pending: { from: 'acc-a', to: 'acc-b', amount: '3000', currency: 'EUR' },
    });
  });

  test('should answer nothing when an exact duplicate arrives while in flight', () => {
    task.command({ ...transfer, requestedAt: '2026-01-01T00:00:00Z' });
    expect(task.forwarded).toEqual([]);
  });

  test('should fail with idempotency_conflict and keep the transfer in flight when a different command reuses the id', () => {
    task.command({ ...transfer, amount: '31.00' });
    const failed = task.take(SINKS.failed);
    expect(failed.map((f) => [f.key, (f.value as Record<string, string>)['code']])).toEqual([
      ['t-1', 'idempotency_conflict'],
    ]);
    expect(task.stores.transfers.logical().get(T1)).toMatchObject({ status: 'in_flight' });
    expect(task.stores.balances.get('acc-a')).toEqual({ balance: '7000', inFlight: '3000' });
  });

  test('should refuse to close the from account with balance_not_zero when money is in flight', () => {
    task.command({ type: 'withdrawal', transferId: 'w', accountId: 'acc-a', amount: '70', currency: 'EUR' });
    task.forwarded.length = 0;
    task.command({ type: 'close_account', accountId: 'acc-a' });
    const [audit] = task.take(SINKS.audit);
    expect(audit?.value).toMatchObject({
      event: 'account_command_rejected',
      code: 'balance_not_zero',
      reason: 'account acc-a holds 0.00 EUR with 30.00 in flight',
    });
  });

  test('should clear the in-flight amount and record completion when the settle leg arrives', () => {
    task.leg('acc-a', { leg: 'settle', transferId: 't-1', from: 'acc-a' });
    expect(task.stores.balances.get('acc-a')).toEqual({ balance: '7000', inFlight: '0' });
    expect(task.stores.transfers.logical().get(T1)).toEqual({
      fingerprint: expect.any(String),
      status: 'completed',
      decidedAt: START_MS,
    });
    expect(task.forwarded).toEqual([]);
    task.leg('acc-a', { leg: 'settle', transferId: 't-1', from: 'acc-a' });
    expect(task.take(SINKS.dlq)[0]?.headers['bankstream.error']?.toString()).toMatch(
      /does not match an in-flight transfer \(completed/,
    );
    expect(task.stores.balances.get('acc-a')).toEqual({ balance: '7000', inFlight: '0' });
  });

  test('should credit back, fail the transfer and keep conflicts answered when the refund leg arrives', () => {
    task.command({ ...transfer, amount: '31.00' });
    task.forwarded.length = 0;
    task.leg('acc-a', {
      leg: 'refund',
      transferId: 't-1',
      from: 'acc-a',
      code: 'account_closed',
      reason: 'account acc-b is closed',
    });
    expect(task.stores.balances.get('acc-a')).toEqual({ balance: '10000', inFlight: '0' });
    expect(task.stores.transfers.logical().get(T1)).toMatchObject({
      status: 'failed',
      code: 'account_closed',
      conflicts: [expect.any(String)],
    });
    expect(task.take(SINKS.failed).map((f) => f.value)).toEqual([
      {
        transferId: 't-1',
        type: 'transfer',
        from: 'acc-a',
        to: 'acc-b',
        amount: '30.00',
        currency: 'EUR',
        requestedAt: new Date(START_MS).toISOString(),
        completedAt: new Date(START_MS).toISOString(),
        code: 'account_closed',
        reason: 'account acc-b is closed',
      },
    ]);
    expect(task.take(SINKS.audit).map((f) => (f.value as Record<string, string>)['event'])).toEqual([
      'transfer_refunded',
      'transfer_failed',
    ]);
    task.command({ ...transfer, amount: '31.00' });
    task.command(transfer);
    expect(task.forwarded).toEqual([]);
  });

  test('should dead-letter a refund leg when its from account is not the transfer’s', () => {
    task.leg('acc-z', { leg: 'refund', transferId: 't-1', from: 'acc-z', code: 'account_closed', reason: 'x' });
    expect(task.take(SINKS.dlq)).toHaveLength(1);
    expect(task.stores.balances.get('acc-a')).toEqual({ balance: '7000', inFlight: '3000' });
  });

  test('should dead-letter a leg when its key is not the account that handles it', () => {
    task.leg('acc-b', { leg: 'settle', transferId: 't-1', from: 'acc-a' });
    expect(task.take(SINKS.dlq)[0]?.headers['bankstream.error']?.toString()).toMatch(/key "acc-b" is not "acc-a"/);
  });

  test('should never expire an in-flight entry when the dedup punctuator runs', async () => {
    task.nowMs = START_MS + 10 * DAY_MS;
    await task.punctuator!(task.nowMs);
    // The step only starts the purge of expired segments; it runs in the background.
    await task.processor.idle();
    expect([...task.stores.transfers.logical().keys()]).toEqual([T1]);
  });

  test('should settle an in-flight entry and answer duplicates of a decided one when they sit under the bare transferId of an older version', () => {
    const legacy = new ManualTask(owner);
    legacy.command({ type: 'open_account', accountId: 'acc-a', ownerId: 'u', currency: 'EUR' });
    // What a version keying dedup by transferId alone left behind: a transfer in flight and a decided deposit.
    legacy.stores.balances.put('acc-a', { balance: '7000', inFlight: '3000' });
    const pending = {
      from: 'acc-a',
      to: 'acc-b',
      amount: '3000',
      currency: 'EUR',
      requestedAt: new Date(START_MS).toISOString(),
    };
    legacy.stores.transfers.put('t-old', { fingerprint: 'old', status: 'in_flight', decidedAt: START_MS, pending });
    legacy.stores.transfers.put('d-old', {
      fingerprint: '["deposit","acc-a","5","EUR"]',
      status: 'completed',
      decidedAt: START_MS,
    });
    legacy.forwarded.length = 0;

    legacy.leg('acc-a', { leg: 'settle', transferId: 't-old', from: 'acc-a' });
    legacy.command({ type: 'deposit', transferId: 'd-old', accountId: 'acc-a', amount: '5', currency: 'EUR' });
    expect(legacy.forwarded).toEqual([]);
    legacy.command({ type: 'deposit', transferId: 'd-old', accountId: 'acc-a', amount: '6', currency: 'EUR' });

    expect(legacy.stores.balances.get('acc-a')).toEqual({ balance: '7000', inFlight: '0' });
    expect(legacy.stores.transfers.logical().get('t-old')).toMatchObject({ status: 'completed', fingerprint: 'old' });
    expect(legacy.take(SINKS.failed).map((f) => (f.value as Record<string, string>)['code'])).toEqual([
      'idempotency_conflict',
    ]);
    expect(legacy.stores.transfers.logical().get('d-old')).toMatchObject({
      status: 'completed',
      conflicts: ['["deposit","acc-a","6","EUR"]'],
    });
    expect([...legacy.stores.transfers.logical().keys()].sort()).toEqual(['d-old', 't-old']);
  });
});
