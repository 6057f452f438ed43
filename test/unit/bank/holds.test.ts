// Holds (two-phase transfers) through the TopologyTestDriver: placed, posted (whole or part), voided,
// expired, at most once, in one task and across tasks; routing; leg copies; malformed input.
import { describe, expect, test } from 'vitest';
import { Bank, crossTaskPair, ManualTask, sameTaskPair, TOPICS } from './harness.ts';

const MINUTE = 60_000;

async function funded(pair: 'same' | 'cross', overdraft?: string): Promise<{ bank: Bank; from: string; to: string }> {
  const bank = new Bank();
  const [from, to] = pair === 'same' ? sameTaskPair(bank.driver, 'h') : crossTaskPair(bank.driver, 'h');
  await bank.open(from, 'EUR', overdraft);
  await bank.open(to);
  await bank.deposit('d-1', from, '100.00');
  bank.clear();
  return { bank, from, to };
}

function hold(transferId: string, from: string, to: string, amount: string, extra: Record<string, unknown> = {}) {
  return { type: 'hold', transferId, from, to, amount, currency: 'EUR', timeoutMs: 10 * MINUTE, ...extra };
}

const values = (rows: Array<{ value: Record<string, string> }>) => rows.map((r) => r.value);

describe.each(['same', 'cross'] as const)('holds in %s task', (pair) => {
  test('should reserve on from and record a pending credit on to when a hold is placed', async () => {
    const { bank, from, to } = await funded(pair);
    await bank.send(hold('h-1', from, to, '40.00'));
    const [done] = values(bank.completed());
    expect(done).toMatchObject({ transferId: 'h-1', type: 'hold', status: 'pending', amount: '40.00', from, to });
    expect(done!['expiresAt']).toBe(new Date(bank.driver.nowMs() + 10 * MINUTE).toISOString());
    expect(await bank.balance(from)).toEqual({ balance: '10000', inFlight: '0', pendingDebits: '4000' });
    expect(await bank.balance(to)).toEqual({ balance: '0', inFlight: '0', pendingCredits: '4000' });
  });

  test('should count held money as spent when a withdrawal would use it', async () => {
    const { bank, from, to } = await funded(pair);
    await bank.send(hold('h-1', from, to, '70.00'));
    await bank.send({ type: 'withdrawal', transferId: 'w-1', accountId: from, amount: '40.00', currency: 'EUR' });
    await bank.send(hold('h-2', from, to, '30.01'));
    expect(values(bank.failed()).map((v) => [v['transferId'], v['code']])).toEqual([
      ['w-1', 'insufficient_funds'],
      ['h-2', 'insufficient_funds'],
    ]);
  });

  test('should move the posted part and release the rest when a hold is posted partly', async () => {
    const { bank, from, to } = await funded(pair);
    await bank.send(hold('h-1', from, to, '40.00'));
    bank.clear();
    await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from, amount: '25.00', currency: 'EUR' });
    expect(values(bank.completed())).toEqual([
      expect.objectContaining({
        transferId: 'p-1',
        type: 'post_hold',
        holdId: 'h-1',
        amount: '25.00',
        heldAmount: '40.00',
        status: 'posted',
      }),
    ]);
    expect(await bank.balance(from)).toEqual({ balance: '7500', inFlight: '0' });
    expect(await bank.balance(to)).toEqual({ balance: '2500', inFlight: '0' });
  });

  test('should resolve a hold at most once when posts and voids follow each other', async () => {
    const { bank, from, to } = await funded(pair);
    await bank.send(hold('h-1', from, to, '40.00'));
    await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from });
    bank.clear();
    // The same post again is silent; another post, and a void, fail.
    await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from });
    await bank.send({ type: 'post_hold', transferId: 'p-2', holdId: 'h-1', from });
    await bank.send({ type: 'void_hold', transferId: 'v-1', holdId: 'h-1', from });
    expect(bank.completed()).toEqual([]);
    expect(values(bank.failed()).map((v) => [v['transferId'], v['code']])).toEqual([
      ['p-2', 'hold_already_posted'],
      ['v-1', 'hold_already_posted'],
    ]);
    expect(await bank.balance(from)).toEqual({ balance: '6000', inFlight: '0' });
    expect(await bank.balance(to)).toEqual({ balance: '4000', inFlight: '0' });
  });

  test('should release the hold when it is voided, and refuse a later post', async () => {
    const { bank, from, to } = await funded(pair);
    await bank.send(hold('h-1', from, to, '40.00'));
    await bank.send({ type: 'void_hold', transferId: 'v-1', holdId: 'h-1', from });
    await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from });
    expect(values(bank.completed()).map((v) => v['status'])).toEqual(['pending', 'voided']);
    expect(values(bank.failed()).map((v) => v['code'])).toEqual(['hold_already_voided']);
    expect(await bank.balance(from)).toEqual({ balance: '10000', inFlight: '0' });
    expect(await bank.balance(to)).toEqual({ balance: '0', inFlight: '0' });
  });

  test('should expire the hold at its deadline when nobody posts it', async () => {
    const { bank, from, to } = await funded(pair);
    await bank.send(hold('h-1', from, to, '40.00', { timeoutMs: MINUTE }));
    await bank.driver.advanceWallClockTime(MINUTE - 1);
    expect(values(bank.completed()).map((v) => v['status'])).toEqual(['pending']);
    await bank.driver.advanceWallClockTime(1_000);
    const [expired] = values(bank.completed());
    expect(expired).toMatchObject({ transferId: 'h-1', type: 'hold_expiry', status: 'expired', amount: '40.00' });
    await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from });
    expect(values(bank.failed()).map((v) => v['code'])).toEqual(['hold_expired']);
    expect(await bank.balance(from)).toEqual({ balance: '10000', inFlight: '0' });
    expect(await bank.balance(to)).toEqual({ balance: '0', inFlight: '0' });
  });

  test('should refuse a hold on a closed or missing to account and release the reservation', async () => {
    const { bank, from, to } = await funded(pair);
    await bank.send(hold('h-1', from, `${to}-missing`, '40.00'));
    const failed = values(bank.failed());
    // A missing account in another task is refused there; in this test it may hash anywhere.
    expect(failed.map((v) => [v['transferId'], v['code']])).toEqual([['h-1', 'account_not_found']]);
    expect(await bank.balance(from)).toEqual({ balance: '10000', inFlight: '0' });
    await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from });
    expect(values(bank.failed()).map((v) => v['code'])).toEqual(['hold_not_found']);
  });

  test('should not let to close while it has a pending credit', async () => {
    const { bank, from, to } = await funded(pair);
    await bank.send(hold('h-1', from, to, '40.00'));
    await bank.send({ type: 'close_account', accountId: to });
    expect(values(bank.audit()).filter((v) => v['event'] === 'account_command_rejected')).toEqual([
      expect.objectContaining({ accountId: to, code: 'balance_not_zero' }),
    ]);
  });
});

describe('hold edge cases', () => {
  test('should route a post sent under the to account key to the task of from', async () => {
    const { bank, from, to } = await funded('cross');
    await bank.send(hold('h-1', from, to, '40.00'));
    bank.clear();
    await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from }, { key: to });
    expect(values(bank.completed()).map((v) => [v['transferId'], v['status']])).toEqual([['p-1', 'posted']]);
    // Sent again under the right key: the same command, already decided, so silent.
    await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from });
    expect(bank.completed()).toEqual([]);
    expect(bank.failed()).toEqual([]);
    expect(await bank.balance(to)).toEqual({ balance: '4000', inFlight: '0' });
  });

  test('should answer a post arriving after the deadline with the expiry first, then hold_expired', () => {
    // One task driven by hand: its clock passes the deadline with no punctuation in between.
    const task = new ManualTask(() => 0);
    task.command({ type: 'open_account', accountId: 'a', ownerId: 'o', currency: 'EUR' });
    task.command({ type: 'open_account', accountId: 'b', ownerId: 'o', currency: 'EUR' });
    task.command({ type: 'deposit', transferId: 'd', accountId: 'a', amount: '100.00', currency: 'EUR' });
    task.command(hold('h-1', 'a', 'b', '40.00', { timeoutMs: MINUTE }));
    task.take('completed-sink');
    task.nowMs += MINUTE;
    task.command({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from: 'a' });
    const completed = task.take('completed-sink').map((f) => f.value as Record<string, string>);
    const failed = task.take('failed-sink').map((f) => f.value as Record<string, string>);
    expect(completed.map((v) => [v['transferId'], v['status']])).toEqual([['h-1', 'expired']]);
    expect(failed.map((v) => [v['transferId'], v['code']])).toEqual([['p-1', 'hold_expired']]);
    expect(task.stores.balances.rows.get('a')).toEqual({ balance: '10000', inFlight: '0' });
    // The to side is released by its leg.
    expect(task.take('credits-sink').map((f) => (f.value as Record<string, string>)['leg'])).toEqual(['hold_release']);
  });

  test('should answer hold_not_open while to has not accepted, and finish the hold on hold_accepted', () => {
    // Partition 0 is this task; b lives elsewhere, so the hold waits for its hold_accepted leg.
    const task = new ManualTask((id) => (id === 'b' ? 1 : 0));
    task.command({ type: 'open_account', accountId: 'a', ownerId: 'o', currency: 'EUR' });
    task.command({ type: 'deposit', transferId: 'd', accountId: 'a', amount: '100.00', currency: 'EUR' });
    task.command(hold('h-1', 'a', 'b', '40.00'));
    const legs = () => task.take('credits-sink').map((f) => f.value as Record<string, string>);
    const codes = () => task.take('failed-sink').map((f) => (f.value as Record<string, string>)['code']);
    expect(legs()).toEqual([
      { leg: 'hold_credit', holdId: 'h-1', from: 'a', to: 'b', amount: '40.00', currency: 'EUR' },
    ]);
    task.take('completed-sink');
    task.command({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from: 'a' });
    expect(codes()).toEqual(['hold_not_open']);
    task.leg('a', { leg: 'hold_accepted', holdId: 'h-1', from: 'a' });
    expect(task.take('completed-sink').map((f) => (f.value as Record<string, string>)['status'])).toEqual(['pending']);
    // A copy of the leg finds no opening hold: dead-lettered, nothing answered twice.
    task.leg('a', { leg: 'hold_accepted', holdId: 'h-1', from: 'a' });
    expect(task.take('dlq-sink')).toHaveLength(1);
    task.command({ type: 'post_hold', transferId: 'p-2', holdId: 'h-1', from: 'a' });
    expect(legs()).toEqual([{ leg: 'hold_post', holdId: 'h-1', from: 'a', to: 'b', amount: '40.00', currency: 'EUR' }]);
    // Posted: the money is in flight to b until hold_settle.
    expect(task.stores.balances.rows.get('a')).toEqual({ balance: '6000', inFlight: '4000' });
    task.leg('a', { leg: 'hold_settle', holdId: 'h-1', from: 'a' });
    expect(task.stores.balances.rows.get('a')).toEqual({ balance: '6000', inFlight: '0' });
    task.leg('a', { leg: 'hold_settle', holdId: 'h-1', from: 'a' });
    expect(task.take('dlq-sink')).toHaveLength(1);
    expect(task.stores.balances.rows.get('a')).toEqual({ balance: '6000', inFlight: '0' });
  });

  test('should release the reservation and answer the code when to refuses the hold', () => {
    const task = new ManualTask((id) => (id === 'b' ? 1 : 0));
    task.command({ type: 'open_account', accountId: 'a', ownerId: 'o', currency: 'EUR' });
    task.command({ type: 'deposit', transferId: 'd', accountId: 'a', amount: '100.00', currency: 'EUR' });
    task.command(hold('h-1', 'a', 'b', '40.00'));
    expect(task.stores.balances.rows.get('a')).toEqual({ balance: '10000', inFlight: '0', pendingDebits: '4000' });
    task.leg('a', {
      leg: 'hold_refused',
      holdId: 'h-1',
      from: 'a',
      code: 'account_closed',
      reason: 'account b is closed',
    });
    const failed = task.take('failed-sink').map((f) => f.value as Record<string, string>);
    expect(failed.map((v) => [v['transferId'], v['code']])).toEqual([['h-1', 'account_closed']]);
    expect(task.stores.balances.rows.get('a')).toEqual({ balance: '10000', inFlight: '0' });
    // The same hold command again is an exact duplicate: silent.
    task.command(hold('h-1', 'a', 'b', '40.00'));
    expect(task.take('failed-sink')).toEqual([]);
    expect(task.take('credits-sink').map((f) => (f.value as Record<string, string>)['leg'])).toEqual(['hold_credit']);
  });

  test('should dead-letter a hold leg with a bad amount or the wrong key and change nothing', () => {
    const task = new ManualTask(() => 0);
    task.command({ type: 'open_account', accountId: 'b', ownerId: 'o', currency: 'EUR' });
    task.leg('b', { leg: 'hold_credit', holdId: 'h', from: 'a', to: 'b', amount: '-1.00', currency: 'EUR' });
    task.leg('a', { leg: 'hold_credit', holdId: 'h', from: 'a', to: 'b', amount: '1.00', currency: 'EUR' });
    task.leg('b', { leg: 'hold_post', holdId: 'h', from: 'a', to: 'b', amount: '1.00', currency: 'EUR' });
    task.leg('a', { leg: 'hold_route', from: 'a', command: '{"type":"hold"}', timestamp: '0' });
    expect(task.take('dlq-sink')).toHaveLength(4);
    expect(task.stores.balances.rows.get('b')).toEqual({ balance: '0', inFlight: '0' });
  });

  test('should fail amount_exceeds_hold and currency_mismatch, and keep the hold pending', async () => {
    const { bank, from, to } = await funded('cross');
    await bank.send(hold('h-1', from, to, '40.00'));
    await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from, amount: '40.01', currency: 'EUR' });
    await bank.send({ type: 'post_hold', transferId: 'p-2', holdId: 'h-1', from, amount: '1.00', currency: 'USD' });
    await bank.send({ type: 'post_hold', transferId: 'p-3', holdId: 'h-1', from, amount: '40.00', currency: 'EUR' });
    expect(values(bank.failed()).map((v) => [v['transferId'], v['code']])).toEqual([
      ['p-1', 'amount_exceeds_hold'],
      ['p-2', 'currency_mismatch'],
    ]);
    expect(values(bank.completed()).map((v) => [v['transferId'], v['status']])).toEqual([
      ['h-1', 'pending'],
      ['p-3', 'posted'],
    ]);
  });

  test('should answer an exact duplicate hold with nothing and a conflicting one with idempotency_conflict', async () => {
    const { bank, from, to } = await funded('cross');
    await bank.send(hold('h-1', from, to, '40.00'));
    bank.clear();
    await bank.send(hold('h-1', from, to, '40.00'));
    await bank.send(hold('h-1', from, to, '41.00'));
    await bank.send(hold('h-1', from, to, '41.00'));
    expect(bank.completed()).toEqual([]);
    expect(values(bank.failed()).map((v) => v['code'])).toEqual(['idempotency_conflict']);
    expect((await bank.balance(from))?.pendingDebits).toBe('4000');
  });

  test.each([
    ['no deadline', { timeoutMs: undefined }],
    ['two deadlines', { expiresAt: '2030-01-01T00:00:00Z' }],
    ['a number timeout too long', { timeoutMs: 31 * 86_400_000 }],
    ['a string timeout', { timeoutMs: '60000' }],
    ['a fractional timeout', { timeoutMs: 1.5 }],
    ['a bad expiresAt', { timeoutMs: undefined, expiresAt: 'tomorrow' }],
    ['a JSON number amount', { amount: 40 }],
    ['a control character in to', { to: 'a\u0000b' }],
  ])('should refuse a hold with %s as malformed', async (_name, extra) => {
    const { bank, from, to } = await funded('same');
    await bank.send(hold('h-1', from, to, '40.00', extra));
    expect(values(bank.failed()).map((v) => v['code'])).toEqual(['malformed']);
    expect(await bank.balance(from)).toEqual({ balance: '10000', inFlight: '0' });
  });

  test('should fail a hold whose expiresAt is already past with hold_expired', async () => {
    const { bank, from, to } = await funded('same');
    await bank.send(hold('h-1', from, to, '40.00', { timeoutMs: undefined, expiresAt: '2020-01-01T00:00:00Z' }));
    expect(values(bank.failed()).map((v) => v['code'])).toEqual(['hold_expired']);
  });

  test('should dead-letter a copy of a hold_post leg and move no money', async () => {
    const { bank, from, to } = await funded('cross');
    await bank.send(hold('h-1', from, to, '40.00'));
    await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from });
    const post = bank.driver.records(TOPICS.credits).find((r) => r.value?.toString().includes('"hold_post"'))!;
    bank.clear();
    await bank.driver.pipeRaw(TOPICS.credits, post.partition, post.key, post.value, undefined, post.headers);
    expect(bank.dlq()).toHaveLength(1);
    expect(await bank.balance(to)).toEqual({ balance: '4000', inFlight: '0' });
  });

  test('should dead-letter a hold command without a transferId', async () => {
    const { bank, from, to } = await funded('same');
    await bank.send({ ...hold('h-1', from, to, '40.00'), transferId: undefined });
    expect(bank.dlq()).toHaveLength(1);
  });

  test('should expire at most the bounded number of holds per punctuation', async () => {
    const { bank, from, to } = await funded('same');
    for (let i = 0; i < 205; i++) await bank.send(hold(`h-${i}`, from, to, '0.01', { timeoutMs: MINUTE }));
    bank.clear();
    await bank.driver.advanceWallClockTime(MINUTE);
    expect(bank.completed()).toHaveLength(200);
    await bank.driver.advanceWallClockTime(100);
    expect(bank.completed()).toHaveLength(5);
    expect(await bank.balance(from)).toEqual({ balance: '10000', inFlight: '0' });
  });

  test('should expire a hold after a restart from the changelogs', async () => {
    const { bank, from, to } = await funded('cross');
    await bank.send(hold('h-1', from, to, '40.00', { timeoutMs: MINUTE }));
    const restarted = bank.restart();
    await restarted.driver.advanceWallClockTime(MINUTE);
    expect(values(restarted.completed()).filter((v) => v['status'] === 'expired')).toHaveLength(1);
    expect(await restarted.balance(from)).toEqual({ balance: '10000', inFlight: '0' });
    expect(await restarted.balance(to)).toEqual({ balance: '0', inFlight: '0' });
  });
});
