// Retention of resolved holds (README-BANK "Holds: retention") through the TopologyTestDriver: a posted,
// voided, expired or refused hold and its to-side mark are kept one dedup retention (late posts and voids
// are still answered by what happened), then forgotten, so the holds store holds only recent holds.
import { describe, expect, test } from 'vitest';
import { Bank, crossTaskPair, DAY_MS, sameTaskPair } from './harness.ts';

const HOUR = 3_600_000;

async function setup(pair: 'same' | 'cross'): Promise<{ bank: Bank; from: string; to: string }> {
  const bank = new Bank({ dedupRetentionMs: DAY_MS, punctuateIntervalMs: HOUR });
  const [from, to] = pair === 'same' ? sameTaskPair(bank.driver, 'r') : crossTaskPair(bank.driver, 'r');
  await bank.open(from);
  await bank.open(to);
  await bank.deposit('d-1', from, '100.00');
  return { bank, from, to };
}

function hold(transferId: string, from: string, to: string, timeoutMs: number) {
  return { type: 'hold', transferId, from, to, amount: '10.00', currency: 'EUR', timeoutMs };
}

const codes = (bank: Bank) => bank.failed().map((r) => [r.value['transferId'], r.value['code']]);

/** The holds store's keys that name `holdId` (rows, marks, index and forget entries). */
async function keysOf(bank: Bank, holdId: string): Promise<string[]> {
  return [...(await bank.driver.storeEntries<unknown>('holds')).keys()].filter((k) => k.endsWith(`\0${holdId}`));
}

describe.each(['same', 'cross'] as const)('resolved holds in %s task', (pair) => {
  test('should answer late posts and voids within the retention, then forget resolved holds but not pending ones', async () => {
    const { bank, from, to } = await setup(pair);
    await bank.send(hold('h-post', from, to, HOUR));
    await bank.send(hold('h-void', from, to, HOUR));
    await bank.send(hold('h-expire', from, to, 1));
    await bank.send(hold('h-open', from, to, 3 * DAY_MS));
    await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-post', from, amount: '4.00', currency: 'EUR' });
    await bank.send({ type: 'void_hold', transferId: 'v-1', holdId: 'h-void', from });
    await bank.driver.advanceWallClockTime(HOUR);
    bank.clear();

    // Half a retention later: every resolution is still known.
    await bank.driver.advanceWallClockTime(DAY_MS / 2);
    await bank.send({ type: 'void_hold', transferId: 'v-2', holdId: 'h-post', from });
    await bank.send({ type: 'post_hold', transferId: 'p-2', holdId: 'h-void', from });
    await bank.send({ type: 'post_hold', transferId: 'p-3', holdId: 'h-expire', from });
    expect(codes(bank)).toEqual([
      ['v-2', 'hold_already_posted'],
      ['p-2', 'hold_already_voided'],
      ['p-3', 'hold_expired'],
    ]);
    for (const id of ['h-post', 'h-void', 'h-expire']) expect(await keysOf(bank, id)).not.toEqual([]);

    // One retention after they resolved: rows, marks and forget entries are gone; the pending hold stays.
    await bank.driver.advanceWallClockTime(DAY_MS / 2 + HOUR);
    for (const id of ['h-post', 'h-void', 'h-expire']) expect(await keysOf(bank, id)).toEqual([]);
    expect((await keysOf(bank, 'h-open')).map((k) => k[0]).sort()).toEqual(['c', 'h', 'x']);
    bank.clear();
    await bank.send({ type: 'void_hold', transferId: 'v-3', holdId: 'h-post', from });
    expect(codes(bank)).toEqual([['v-3', 'hold_not_found']]);
    // Money is where the resolutions put it: the forget moved nothing.
    expect(await bank.balance(from)).toEqual({ balance: '9600', inFlight: '0', pendingDebits: '1000' });
    expect(await bank.balance(to)).toEqual({ balance: '400', inFlight: '0', pendingCredits: '1000' });
  });
});

test('should forget a hold refused by its to task one retention after the refusal', async () => {
  const bank = new Bank({ dedupRetentionMs: DAY_MS, punctuateIntervalMs: HOUR });
  const [from, to] = crossTaskPair(bank.driver, 'rf');
  await bank.open(from);
  await bank.deposit('d-1', from, '100.00');
  await bank.send(hold('h-1', from, to, HOUR));
  expect(codes(bank)).toEqual([['h-1', 'account_not_found']]);
  expect((await keysOf(bank, 'h-1')).map((k) => k[0]).sort()).toEqual(['c', 'f', 'f', 'h']);
  await bank.driver.advanceWallClockTime(DAY_MS + HOUR);
  expect(await keysOf(bank, 'h-1')).toEqual([]);
  expect(await bank.balance(from)).toEqual({ balance: '10000', inFlight: '0' });
});

test('should keep forgetting after a restart from the changelogs', async () => {
  const { bank, from, to } = await setup('cross');
  await bank.send(hold('h-1', from, to, HOUR));
  await bank.send({ type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from });
  const restarted = bank.restart();
  expect(await keysOf(restarted, 'h-1')).not.toEqual([]);
  await restarted.driver.advanceWallClockTime(DAY_MS + HOUR);
  expect(await keysOf(restarted, 'h-1')).toEqual([]);
});
