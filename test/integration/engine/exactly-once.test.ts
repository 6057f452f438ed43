// Engine integration tests on the real broker with a small summing topology (test/fixtures/counting-app.ts).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { type Child, killAll, killChild, spawnFixture } from '../../helpers/child.ts';
import { Consumer } from '@platformatic/kafka';
import {
  BROKERS,
  createTopics,
  deleteTopics,
  produce,
  readCommitted,
  uniqueName,
  waitFor,
} from '../../helpers/kafka.ts';
import { TEST_CLUSTER_SECRET } from '../support/kafka.ts';

const APP = path.resolve('test/fixtures/counting-app.ts');
const PARTITIONS = 4;
const KEYS = 40;

interface Output {
  id: string;
  key: string;
  sum: number;
  count: number;
  partition: number;
}

interface Setup {
  appId: string;
  input: string;
  output: string;
  stateDir: string;
}

const created: string[] = [];
const dirs: string[] = [];

async function setup(): Promise<Setup> {
  const appId = uniqueName('eos');
  const input = `${appId}-in`;
  const output = `${appId}-out`;
  const changelog = `${appId}-sums-changelog`;
  await createTopics([
    { name: input, partitions: PARTITIONS },
    { name: output, partitions: PARTITIONS },
    { name: changelog, partitions: PARTITIONS, compact: true },
  ]);
  created.push(input, output, changelog);
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-eos-'));
  dirs.push(stateDir);
  return { appId, input, output, stateDir };
}

function start(s: Setup, instanceId: string, env: Record<string, string> = {}): Child {
  return spawnFixture(APP, {
    APP_ID: s.appId,
    INSTANCE_ID: instanceId,
    INPUT: s.input,
    OUTPUT: s.output,
    STATE_DIR: s.stateDir,
    LOG_LEVEL: 'warn',
    CLUSTER_SECRET: TEST_CLUSTER_SECRET,
    ...env,
  });
}

/** Produces records first..last-1 with deterministic keys and amounts; returns the expected sums per key. */
async function produceRange(s: Setup, first: number, last: number): Promise<void> {
  const messages = [];
  for (let i = first; i < last; i++) {
    const key = `k${i % KEYS}`;
    messages.push({
      topic: s.input,
      key: Buffer.from(key),
      value: Buffer.from(JSON.stringify({ id: String(i), amount: (i % 7) + 1 })),
      partition: partitionForKey(key, PARTITIONS),
    });
  }
  await produce(messages);
}

function expectedSums(total: number): Map<string, { sum: number; count: number }> {
  const sums = new Map<string, { sum: number; count: number }>();
  for (let i = 0; i < total; i++) {
    const key = `k${i % KEYS}`;
    const prev = sums.get(key) ?? { sum: 0, count: 0 };
    sums.set(key, { sum: prev.sum + (i % 7) + 1, count: prev.count + 1 });
  }
  return sums;
}

async function outputs(s: Setup): Promise<Output[]> {
  return (await readCommitted(s.output, PARTITIONS)).map((r) => JSON.parse(r.value!.toString('utf8')) as Output);
}

async function waitForOutputs(s: Setup, count: number, timeoutMs = 90_000): Promise<Output[]> {
  return waitFor(
    `${count} outputs`,
    async () => {
      const out = await outputs(s);
      return out.length >= count ? out : undefined;
    },
    timeoutMs,
    500,
  );
}

/** Last stable and high-watermark offsets per partition, for diagnostics. */
async function endOffsets(topic: string): Promise<string> {
  const consumer = new Consumer({ clientId: 'diagnostics', groupId: uniqueName('diag'), bootstrapBrokers: BROKERS });
  try {
    const lso = (await consumer.listOffsets({ topics: [topic], isolationLevel: 1 })).get(topic) ?? [];
    const hwm = (await consumer.listOffsets({ topics: [topic], isolationLevel: 0 })).get(topic) ?? [];
    return lso.map((o, p) => `${p}: LSO ${o} HWM ${hwm[p]}`).join(', ');
  } finally {
    await consumer.close();
  }
}

/** Exactly one output per input id, and the final sum and count per key are the expected ones. */
function assertExactlyOnce(out: Output[], total: number): void {
  const ids = out.map((o) => o.id);
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.length).toBe(total);
  const expected = expectedSums(total);
  const last = new Map<string, Output>();
  for (const o of out) if ((last.get(o.key)?.count ?? 0) < o.count) last.set(o.key, o);
  for (const [key, { sum, count }] of expected) {
    expect(last.get(key), key).toMatchObject({ sum, count });
  }
  // Within a key the counts are exactly 1..n: no gap, no repeat.
  const byKey = new Map<string, number[]>();
  for (const o of out) (byKey.get(o.key) ?? byKey.set(o.key, []).get(o.key)!).push(o.count);
  for (const [key, counts] of byKey)
    expect(
      counts.sort((a, b) => a - b),
      key,
    ).toEqual(counts.map((_, i) => i + 1));
}

describe('exactly-once engine on the real broker', () => {
  beforeAll(() => undefined);
  afterEach(async () => {
    await killAll();
  });
  afterAll(async () => {
    await deleteTopics(created);
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('should produce exactly one output per input when the processor is SIGKILLed several times', async () => {
    const s = await setup();
    const total = 12_000;
    await produceRange(s, 0, total);
    // Small batches so that every kill lands between (or inside) commits, at varying depths.
    for (const commits of [2, 5, 3]) {
      const child = start(s, 'a', { BATCH_RECORDS_MAX: '100' });
      await waitFor(
        `${commits} commits`,
        async () => (child.output().split('COMMIT').length > commits ? true : undefined),
        60_000,
        5,
      );
      await killChild(child, 'SIGKILL');
    }
    const partial = await outputs(s);
    expect(partial.length).toBeLessThan(total);
    const child = start(s, 'a');
    const out = await waitForOutputs(s, total).catch(async (error: Error) => {
      const seen = await outputs(s);
      const offsets = await endOffsets(s.output);
      throw new Error(
        `${error.message}; read ${seen.length}; output offsets ${offsets}; the processor printed:\n${child.output().slice(-3000)}`,
      );
    });
    await killChild(child, 'SIGTERM');
    assertExactlyOnce(await outputs(s), total);
    expect(out.length).toBe(total);
  });

  it('should join a group whose first member speaks the previous protocol (a rolling upgrade) and then process everything once', async () => {
    const s = await setup();
    await produceRange(s, 0, 400);
    // A member of an earlier version: the client's default protocol (roundrobin) and assigner; it joins
    // first, so it leads the group and assigns with its own assigner.
    const old = new Consumer({
      clientId: 'old-version',
      groupId: s.appId,
      bootstrapBrokers: BROKERS,
      autocommit: false,
      sessionTimeout: 6000,
      rebalanceTimeout: 30_000,
      heartbeatInterval: 500,
    });
    old.topics.trackAll(s.input);
    await old.joinGroup({});
    const child = start(s, 'a', { LOG_LEVEL: 'info' });
    try {
      await waitFor(
        'the new version in the group',
        async () => (child.output().includes('group assignment received') ? true : undefined),
        60_000,
        100,
      );
      expect(child.output()).not.toContain('INCONSISTENT_GROUP_PROTOCOL');
    } finally {
      await (old.leaveGroup(false) as unknown as Promise<void>).catch(() => undefined);
      await old.close(true);
    }
    await waitForOutputs(s, 400);
    await killChild(child, 'SIGTERM');
    assertExactlyOnce(await outputs(s), 400);
  });

  it('should rebuild the stores from the changelogs when the state folder is deleted', async () => {
    const s = await setup();
    await produceRange(s, 0, 1000);
    let child = start(s, 'a');
    await waitForOutputs(s, 1000);
    await killChild(child, 'SIGTERM');
    await rm(s.stateDir, { recursive: true, force: true });
    await produceRange(s, 1000, 1500);
    child = start(s, 'a');
    await waitForOutputs(s, 1500);
    await killChild(child, 'SIGTERM');
    assertExactlyOnce(await outputs(s), 1500);
  });

  it('should move the tasks of a SIGKILLed instance to the other one without loss or duplicates', async () => {
    const s = await setup();
    await produceRange(s, 0, 1000);
    const a = start(s, 'a');
    const b = start(s, 'b');
    await waitForOutputs(s, 1000);
    expect(new Set((await outputs(s)).map((o) => o.partition)).size).toBe(PARTITIONS);
    await killChild(b, 'SIGKILL');
    await produceRange(s, 1000, 2000);
    await waitForOutputs(s, 2000, 120_000);
    await killChild(a, 'SIGTERM');
    assertExactlyOnce(await outputs(s), 2000);
  });

  it('should fence the older process when two run with the same instance id', async () => {
    const s = await setup();
    await produceRange(s, 0, 500);
    const older = start(s, 'same');
    await waitForOutputs(s, 500);
    const newer = start(s, 'same');
    await waitFor('newer started', async () => newer.output().includes('STARTED'), 60_000, 50);
    await produceRange(s, 500, 1500);
    const code = await Promise.race([
      older.exited,
      new Promise<string>((r) => setTimeout(() => r('still running'), 60_000)),
    ]);
    expect(code, older.output()).toBe(3);
    expect(older.output()).toContain('FATAL');
    await waitForOutputs(s, 1500, 120_000);
    await killChild(newer, 'SIGTERM');
    assertExactlyOnce(await outputs(s), 1500);
  });

  it('should re-route a record whose key hashes to another partition instead of processing it in the wrong task', async () => {
    const s = await setup();
    const key = 'k7';
    const right = partitionForKey(key, PARTITIONS);
    const wrong = (right + 1) % PARTITIONS;
    await produce([
      {
        topic: s.input,
        key: Buffer.from(key),
        value: Buffer.from(JSON.stringify({ id: 'misrouted', amount: 5 })),
        partition: wrong,
      },
    ]);
    const child = start(s, 'a');
    const out = await waitForOutputs(s, 1);
    await killChild(child, 'SIGTERM');
    expect(out).toEqual([{ id: 'misrouted', key, sum: 5, count: 1, partition: right }]);
    const input = await readCommitted(s.input, PARTITIONS);
    expect(input.map((r) => r.partition).sort()).toEqual([right, wrong].sort());
  });
});
