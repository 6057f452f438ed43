// Holds under process death on the real broker (issue #23): two instances as child processes, the hold's
// `from` on a partition of i0 and its `to` on one of i1.
//   1. Post with its legs in flight: i1 (the to side) is stopped (SIGSTOP), a post of h-1 is decided by
//      i0 (its `posted` outcome committed: from debited, the posted amount in flight, the hold_post leg in
//      the credits topic unread), then i0 is SIGKILLed. Right behind it a post of h-3 is sent and races the
//      kill (undecided, in an open transaction, or committed: whichever it was, the new owner must decide
//      it once). i1 resumes: it credits h-1's leg and sends hold_settle to from's partition, which has no
//      live owner until the group rebalances and i1 takes it over from the changelogs.
//   2. Expiry after a restart: h-4 is placed with a 30 s timeout, both instances are SIGKILLed before its
//      deadline, nothing runs past it (no expiry can be emitted), then they restart: the punctuator of
//      the restored task expires it once and the release leg frees `to`'s pending credit.
// Then: exactly the expected outcomes, each once; balances exact, nothing in flight, no pending amount
// left; no leg dead-lettered (a leg applied twice would be); `bankstream reconcile` agrees (holds included).
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { formatReport } from '../../../src/ops/reconcile/report.ts';
import { reconcile } from '../../../src/ops/reconcile/reconcile.ts';
import { type Child, killAll, killChild, spawnFixture } from '../../helpers/child.ts';
import { produce, readCommitted, waitFor } from '../../helpers/kafka.ts';
import { adminToken } from '../support/tokens.ts';
import { DEV_SECRET, call, createStack, type Stack } from '../http/stack.ts';

const CLI = path.resolve('src/cli/main.ts');
const PARTITIONS = 4;
const stacks: Stack[] = [];

afterAll(async () => {
  await killAll();
  for (const stack of stacks) await stack.cleanup();
});

const parse = (b: Buffer | null) => JSON.parse(b!.toString('utf8')) as Record<string, string>;

describe('holds when instances die', () => {
  it('should resolve a cross-partition post exactly once when the debit task’s instance is SIGKILLed with its legs in flight, and expire a hold after a restart past its deadline', async () => {
    const stack = await createStack('holdsko');
    stacks.push(stack);
    const config = loadConfig(stack.env);
    const instances = new Map<string, { url: string; child: Child }>();
    const start = async (id: string) => {
      const port = instances.get(id)?.url.split(':')[2] ?? String(await freePort());
      const url = `http://127.0.0.1:${port}`;
      const env = { ...stack.env, INSTANCE_ID: id, HTTP_PORT: port, ADVERTISED_URL: url };
      instances.set(id, { url, child: spawnFixture(CLI, env, ['start', '--no-sink']) });
    };
    const child = (id: string) => instances.get(id)!.child;
    const sink = spawnFixture(CLI, { ...stack.env, INSTANCE_ID: 'sink' }, ['sink']);
    await start('i0');
    await start('i1');
    const owned = await bothRunning(instances.get('i0')!.url, instances.get('i1')!.url);
    const from = accountOn(owned.i0, 'hk-from');
    const to = accountOn(owned.i1, 'hk-to');

    const send = (key: string, command: Record<string, unknown>) =>
      produce([{ topic: config.topics.input, key: Buffer.from(key), value: Buffer.from(JSON.stringify(command)) }]);
    const read = async (topic: string) =>
      (await readCommitted(topic, PARTITIONS, config.kafkaBrokers)).map((r) => parse(r.value));
    const outcomes = async () => [...(await read(config.topics.completed)), ...(await read(config.topics.failed))];
    const outcome = (transferId: string, type: string) =>
      waitFor(
        `${type} ${transferId}`,
        async () => (await outcomes()).find((o) => o.transferId === transferId && o.type === type),
        120_000,
        300,
      );
    const balances = async () => {
      const rows = new Map<string, Record<string, string>>();
      for (const r of await readCommitted(`${config.appId}-balances-changelog`, PARTITIONS, config.kafkaBrokers))
        if (r.key && r.value) rows.set(r.key.toString('utf8'), parse(r.value));
      return rows;
    };
    const hold = (transferId: string, amount: string, timeoutMs: number) => ({
      type: 'hold',
      transferId,
      from,
      to,
      amount,
      currency: 'EUR',
      timeoutMs,
    });

    await send(from, { type: 'open_account', accountId: from, ownerId: 'u', currency: 'EUR' });
    await send(to, { type: 'open_account', accountId: to, ownerId: 'u', currency: 'EUR' });
    await send(from, { type: 'deposit', transferId: 'd-1', accountId: from, amount: '100.00', currency: 'EUR' });
    await send(from, hold('h-1', '60.00', 600_000));
    await send(from, hold('h-3', '10.00', 600_000));
    // Pending: the to task (i1) accepted both credits.
    await outcome('h-1', 'hold');
    await outcome('h-3', 'hold');

    // 1. The to side stops; the from side decides a partial post of h-1 and commits it.
    child('i1').process.kill('SIGSTOP');
    await send(from, { type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from, amount: '35.00', currency: 'EUR' });
    expect(await outcome('p-1', 'post_hold')).toMatchObject({ status: 'posted', amount: '35.00', heldAmount: '60.00' });
    // Committed with it: 35.00 in flight on from, its hold_post leg not yet read by the stopped to task.
    expect((await balances()).get(from)).toMatchObject({ balance: '6500', inFlight: '3500' });
    await send(from, { type: 'post_hold', transferId: 'p-3', holdId: 'h-3', from });
    await killChild(child('i0'), 'SIGKILL');
    child('i1').process.kill('SIGCONT');
    // The group notices i0's death (session timeout), i1 takes from's partition over and restores it.
    expect(await outcome('p-3', 'post_hold')).toMatchObject({ status: 'posted', amount: '10.00' });
    const settled = await waitFor(
      'the posts settled on both sides',
      async () => {
        const rows = await balances();
        return rows.get(from)?.inFlight === '0' && rows.get(to)?.balance === '4500' ? rows : undefined;
      },
      120_000,
      300,
    );
    expect(settled.get(from)).toEqual({ balance: '5500', inFlight: '0' });
    expect(settled.get(to)).toEqual({ balance: '4500', inFlight: '0' });

    // 2. A new i0 joins again; h-4 is placed, then every instance dies before its deadline.
    await start('i0');
    await bothRunning(instances.get('i0')!.url, instances.get('i1')!.url);
    await send(from, hold('h-4', '20.00', 30_000));
    const placed = await outcome('h-4', 'hold');
    await Promise.all([killChild(child('i0'), 'SIGKILL'), killChild(child('i1'), 'SIGKILL')]);
    const deadlineMs = Date.parse(placed.expiresAt!);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, deadlineMs + 2000 - Date.now())));
    // Nothing ran past the deadline: no expiry yet, the money still held.
    expect((await outcomes()).filter((o) => o.type === 'hold_expiry')).toEqual([]);
    expect((await balances()).get(from)).toMatchObject({ pendingDebits: '2000' });
    await start('i0');
    await start('i1');
    expect(await outcome('h-4', 'hold_expiry')).toMatchObject({ status: 'expired', amount: '20.00', to });
    const released = await waitFor(
      'the expiry released on both sides',
      async () => {
        const rows = await balances();
        return rows.get(from)?.pendingDebits === undefined && rows.get(to)?.pendingCredits === undefined
          ? rows
          : undefined;
      },
      120_000,
      300,
    );
    expect(released.get(from)).toEqual({ balance: '5500', inFlight: '0' });
    expect(released.get(to)).toEqual({ balance: '4500', inFlight: '0' });

    // Every outcome once; no leg went to the DLQ (a duplicate leg would: its mark is no longer pending).
    const summary = (await outcomes()).map((o) => [o.transferId, o.type, o.status ?? o.code ?? 'completed']).sort();
    expect(summary).toEqual(
      [
        ['d-1', 'deposit', 'completed'],
        ['h-1', 'hold', 'pending'],
        ['h-3', 'hold', 'pending'],
        ['h-4', 'hold', 'pending'],
        ['h-4', 'hold_expiry', 'expired'],
        ['p-1', 'post_hold', 'posted'],
        ['p-3', 'post_hold', 'posted'],
      ].sort(),
    );
    expect(await read(config.topics.dlq)).toEqual([]);
    const report = await reconcile(config, { quietTimeoutMs: 60_000 });
    expect(report.differences, formatReport(report)).toEqual([]);
    expect(report.counts.holds).toEqual({ placed: 3, posted: 2, voided: 0, expired: 1, pending: 0 });
    await Promise.all([...instances.values()].map(({ child: c }) => killChild(c, 'SIGTERM')));
    await killChild(sink, 'SIGTERM');
  }, 420_000);
});

/** An account id whose partition is one of `partitions`. */
function accountOn(partitions: number[], prefix: string): string {
  for (let i = 0; ; i++) {
    const id = `${prefix}-${i}`;
    if (partitions.includes(partitionForKey(Buffer.from(id), PARTITIONS))) return id;
  }
}

/** Waits until both instances are ready and run disjoint partition sets covering all; returns them. */
async function bothRunning(url0: string, url1: string): Promise<{ i0: number[]; i1: number[] }> {
  return waitFor(
    'both instances running their share',
    async () => {
      const [a, b] = await Promise.all([running(url0), running(url1)]);
      if (a === undefined || b === undefined || a.length === 0 || b.length === 0) return undefined;
      const all = new Set([...a, ...b]);
      return all.size === PARTITIONS && a.length + b.length === PARTITIONS ? { i0: a, i1: b } : undefined;
    },
    120_000,
    300,
  );
}

async function running(url: string): Promise<number[] | undefined> {
  const response = await call(url, 'GET', '/readyz', { token: await adminToken(DEV_SECRET) }).catch(() => undefined);
  const body = response?.body as { ready?: boolean; streams?: { running?: number[] } } | undefined;
  return response?.status === 200 && body?.ready === true ? (body.streams?.running ?? []) : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
