// Hold expiry's background/apply split (src/bank/hold-expiry.ts) across a restart in the middle: the
// punctuator's scan reads in the background, a later step sends hold_expire legs, and the from task
// expires the hold when it processes one. A process that dies between scan and apply, or between the
// leg and its processing, asks again after the restart; the hold still expires exactly once.
import { describe, expect, test } from 'vitest';
import { Bank, crossTaskPair, type Forwarded, ManualTask } from './harness.ts';

const MINUTE = 60_000;

function hold(transferId: string, from: string, to: string, timeoutMs: number) {
  return { type: 'hold', transferId, from, to, amount: '40.00', currency: 'EUR', timeoutMs };
}

/** A task of accounts a and b (same task) with a hold h-1 of 40.00 from a to b, due in a minute. */
function placed(): ManualTask {
  const task = new ManualTask(() => 0);
  task.command({ type: 'open_account', accountId: 'a', ownerId: 'o', currency: 'EUR' });
  task.command({ type: 'open_account', accountId: 'b', ownerId: 'o', currency: 'EUR' });
  task.command({ type: 'deposit', transferId: 'd', accountId: 'a', amount: '100.00', currency: 'EUR' });
  task.command(hold('h-1', 'a', 'b', MINUTE));
  task.take('completed-sink');
  return task;
}

/** The same task after a restart: a new processor on the stores as the last commit left them. */
function restarted(from: ManualTask): ManualTask {
  const task = new ManualTask(() => 0);
  for (const [name, store] of Object.entries(from.stores))
    for (const [key, value] of store.rows) task.stores[name as keyof ManualTask['stores']].rows.set(key, value);
  task.nowMs = from.nowMs;
  return task;
}

async function runHoldExpiry(task: ManualTask): Promise<void> {
  await task.punctuators[1]!(task.nowMs);
  await task.processor.idle();
}

const legsOf = (task: ManualTask): Forwarded[] => task.take('credits-sink');
const kind = (leg: Forwarded): string => (leg.value as Record<string, string>)['leg']!;
const deliver = (task: ManualTask, legs: Forwarded[]): void => {
  for (const leg of legs) task.leg(String(leg.key), leg.value as Record<string, unknown>);
};

describe('hold expiry across a restart in the middle', () => {
  test('should expire the hold once when the process dies between a scan and the step that applies it', async () => {
    const task = placed();
    await runHoldExpiry(task); // the first step: nothing due yet; it leaves a scan read in the background
    expect(legsOf(task)).toEqual([]);
    task.nowMs += MINUTE;
    const after = restarted(task); // dies before the next step applies that scan
    await runHoldExpiry(after);
    const legs = legsOf(after);
    expect(legs.map(kind)).toEqual(['hold_expire']);
    deliver(after, legs);
    expect(after.take('completed-sink').map((f) => (f.value as Record<string, string>)['status'])).toEqual(['expired']);
    expect(legsOf(after).map(kind)).toEqual(['hold_release']);
    expect(after.stores.balances.rows.get('a')).toEqual({ balance: '10000', inFlight: '0' });
    // Later runs find nothing left to expire.
    after.nowMs += MINUTE;
    await runHoldExpiry(after);
    await runHoldExpiry(after);
    expect(legsOf(after)).toEqual([]);
  });

  test('should expire the hold once when the leg was sent but not processed before the restart, and answer a late post hold_expired', async () => {
    const task = placed();
    task.nowMs += MINUTE;
    await runHoldExpiry(task);
    const sent = legsOf(task);
    expect(sent.map(kind)).toEqual(['hold_expire']);
    // Committed with the leg, then the process died: the new one asks again, and both legs arrive.
    const after = restarted(task);
    await runHoldExpiry(after);
    const again = legsOf(after);
    expect(again.map(kind)).toEqual(['hold_expire']);
    after.nowMs += 1;
    after.command({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from: 'a' });
    deliver(after, [...sent, ...again]);
    expect(after.take('completed-sink').map((f) => (f.value as Record<string, string>)['status'])).toEqual(['expired']);
    expect(after.take('failed-sink').map((f) => (f.value as Record<string, string>)['code'])).toEqual(['hold_expired']);
    // One release to the to side, and the legs after the expiry changed nothing.
    expect(legsOf(after).map(kind)).toEqual(['hold_release']);
    expect(after.take('dlq-sink')).toEqual([]);
    expect(after.stores.balances.rows.get('a')).toEqual({ balance: '10000', inFlight: '0' });
    expect([...after.stores.holds.rows.keys()].filter((k) => k.startsWith('x'))).toEqual([]);
  });

  test('should expire cross-task holds once through the driver with a restart after the scan', async () => {
    const bank = new Bank();
    const [from, to] = crossTaskPair(bank.driver, 'xr');
    await bank.open(from);
    await bank.open(to);
    await bank.deposit('d-1', from, '200.00');
    for (let i = 0; i < 3; i++) await bank.send(hold(`h-${i}`, from, to, MINUTE));
    await bank.driver.advanceWallClockTime(MINUTE - 1); // a step whose scan reads the three, not yet due
    bank.clear();
    const after = bank.restart();
    await after.driver.advanceWallClockTime(1_000);
    await after.driver.advanceWallClockTime(1_000);
    const expired = after.completed().filter((r) => r.value['status'] === 'expired');
    expect(expired.map((r) => r.value['holdId']).sort()).toEqual(['h-0', 'h-1', 'h-2']);
    expect(after.dlq()).toEqual([]);
    expect(await after.balance(from)).toEqual({ balance: '20000', inFlight: '0' });
    expect(await after.balance(to)).toEqual({ balance: '0', inFlight: '0' });
  });
});
