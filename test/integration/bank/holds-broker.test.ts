// Holds on the real broker (issue #23), through the exactly-once engine: a hold across partitions posted
// partly (once under from's key, once routed from to's key), a void, and a hold that expires by the
// wall-clock punctuator after the instance restarted on an empty state folder (restored from the holds
// and balances changelogs). Every hold resolves exactly once; balances end exact with nothing in flight.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startInstance } from '../../../src/app/instance.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { createLogger } from '../../../src/config/logger.ts';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { produce, readCommitted, waitFor } from '../../helpers/kafka.ts';
import { deleteTopicsWithPrefix } from '../support/kafka.ts';
import { PARTITIONS, setupPipeline } from './pipeline.ts';

const prefixes: string[] = [];
const dirs: string[] = [];

async function stateDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-holds-'));
  dirs.push(dir);
  return dir;
}

afterAll(async () => {
  for (const prefix of prefixes) await deleteTopicsWithPrefix(prefix);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Two account ids in different partitions. */
function crossPair(): [string, string] {
  const a = 'hold-a';
  for (let i = 0; ; i++) {
    const b = `hold-b-${i}`;
    if (partitionForKey(Buffer.from(a), PARTITIONS) !== partitionForKey(Buffer.from(b), PARTITIONS)) return [a, b];
  }
}

const parse = (b: Buffer | null) => JSON.parse(b!.toString('utf8')) as Record<string, string>;

describe('holds on the real broker', () => {
  it('should resolve every hold exactly once across partitions and expire a hold after a restart', async () => {
    const { prefix, env, config } = await setupPipeline('holds', await stateDir());
    prefixes.push(prefix);
    const [a, b] = crossPair();
    const send = (key: string, command: Record<string, unknown>) =>
      produce([{ topic: config.topics.input, key: Buffer.from(key), value: Buffer.from(JSON.stringify(command)) }]);
    const read = async (topic: string) =>
      (await readCommitted(topic, PARTITIONS, config.kafkaBrokers)).map((r) => parse(r.value));
    const outcomes = async (n: number) =>
      waitFor(
        `${n} outcomes`,
        async () => {
          const all = [...(await read(config.topics.completed)), ...(await read(config.topics.failed))];
          return all.length >= n ? all : undefined;
        },
        90_000,
        500,
      );
    const hold = (transferId: string, amount: string, timeoutMs: number) => ({
      type: 'hold',
      transferId,
      from: a,
      to: b,
      amount,
      currency: 'EUR',
      timeoutMs,
    });

    let instance = await startInstance({ config, logger: createLogger('warn'), sink: false });
    try {
      await send(a, { type: 'open_account', accountId: a, ownerId: 'u', currency: 'EUR' });
      await send(b, { type: 'open_account', accountId: b, ownerId: 'u', currency: 'EUR' });
      await send(a, { type: 'deposit', transferId: 'd-1', accountId: a, amount: '100.00', currency: 'EUR' });
      await send(a, hold('h-1', '40.00', 600_000));
      await send(a, hold('h-2', '10.00', 600_000));
      await outcomes(3);
      await send(a, { type: 'post_hold', transferId: 'p-1', holdId: 'h-1', from: a, amount: '25.00', currency: 'EUR' });
      await outcomes(4);
      // Routed: under to's key, its task sends them on to from's; the second post of h-1 fails.
      await send(b, { type: 'void_hold', transferId: 'v-2', holdId: 'h-2', from: a });
      await send(b, { type: 'post_hold', transferId: 'p-1b', holdId: 'h-1', from: a });
      await send(a, hold('h-3', '5.00', 15_000));
      const before = await outcomes(7);
      // h-3 is still pending when this instance stops: its expiry is the next instance's.
      expect(before.filter((v) => v['type'] === 'hold_expiry')).toEqual([]);
    } finally {
      await instance.close();
    }
    // A new instance on an empty state folder: the holds store comes back from its changelog, and the
    // deadline of h-3 passes while it runs.
    const restartedConfig = loadConfig({ ...env, STATE_DIR: await stateDir() });
    instance = await startInstance({ config: restartedConfig, logger: createLogger('warn'), sink: false });
    try {
      const all = await outcomes(8);
      const summary = all.map((v) => [v['transferId'], v['type'], v['status'] ?? v['code'] ?? 'completed']).sort();
      expect(summary).toEqual(
        [
          ['d-1', 'deposit', 'completed'],
          ['h-1', 'hold', 'pending'],
          ['h-2', 'hold', 'pending'],
          ['h-3', 'hold', 'pending'],
          ['h-3', 'hold_expiry', 'expired'],
          ['p-1', 'post_hold', 'posted'],
          ['p-1b', 'post_hold', 'hold_already_posted'],
          ['v-2', 'void_hold', 'voided'],
        ].sort(),
      );
      const balances = await waitFor(
        'no money in flight and no pending amount',
        async () => {
          const rows = new Map<string, Record<string, string>>();
          for (const r of await readCommitted(`${config.appId}-balances-changelog`, PARTITIONS, config.kafkaBrokers))
            if (r.key && r.value) rows.set(r.key.toString('utf8'), parse(r.value));
          // h-3's expiry releases a's pending debit first; b's pending credit goes with a leg afterwards.
          const settled = (row: Record<string, string>) =>
            row['inFlight'] === '0' && row['pendingDebits'] === undefined && row['pendingCredits'] === undefined;
          return [...rows.values()].every(settled) ? rows : undefined;
        },
        60_000,
        500,
      );
      expect(balances.get(a)).toEqual({ balance: '7500', inFlight: '0' });
      expect(balances.get(b)).toEqual({ balance: '2500', inFlight: '0' });
      expect(await read(config.topics.dlq)).toEqual([]);
    } finally {
      await instance.close();
    }
  }, 240_000);
});
