// Offsets fail closed, on the real broker (src/kafka/offset-reset.ts): a task with state but no committed
// offset does not start (and replays nothing); an out-of-range position stops that partition only; the
// operator's `bankstream offsets reset` heals both. A small summing topology runs in-process.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Admin } from '@platformatic/kafka';
import { afterAll, describe, expect, it } from 'vitest';
import { clusterKeysFromSecret } from '../../../src/config/cluster-key.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { createLogger } from '../../../src/config/logger.ts';
import { Metrics } from '../../../src/metrics/metrics.ts';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { OffsetResetError, resetOffsets } from '../../../src/ops/offsets.ts';
import { KafkaStreams, type StreamsStatus } from '../../../src/runtime/kafka-streams.ts';
import type { OffsetResetPolicy } from '../../../src/kafka/offset-reset.ts';
import { record } from '../../../src/topology/record.ts';
import { Topology } from '../../../src/topology/topology.ts';
import type { KeyValueStore, Processor, ProcessorContext, Rec } from '../../../src/topology/types.ts';
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

const PARTITIONS = 2;
const log = createLogger('silent');
const created: string[] = [];
const dirs: string[] = [];
const running = new Set<KafkaStreams>();

afterAll(async () => {
  for (const streams of running) await streams.close().catch(() => undefined);
  await deleteTopics(created);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

class Summer implements Processor<string, Buffer, string, Buffer> {
  #context!: ProcessorContext<string, Buffer>;
  #store!: KeyValueStore<{ count: number }>;
  init(context: ProcessorContext<string, Buffer>): void {
    this.#context = context;
    this.#store = context.getStore('counts');
  }
  prefetch(rec: Rec<string, Buffer>, keys: { add(store: string, key: string): void }): void {
    keys.add('counts', rec.key);
  }
  process(rec: Rec<string, Buffer>): void {
    const count = (this.#store.get(rec.key)?.count ?? 0) + 1;
    this.#store.put(rec.key, { count });
    const id = (JSON.parse(rec.value.toString('utf8')) as { id: string }).id;
    this.#context.forward(
      record(
        rec.key,
        Buffer.from(JSON.stringify({ id, key: rec.key, count, partition: this.#context.partition })),
        rec.timestamp,
        {},
      ),
    );
  }
}

interface Setup {
  appId: string;
  input: string;
  output: string;
  stateDir: string;
}

async function setup(label: string): Promise<Setup> {
  const appId = uniqueName(label);
  const input = `${appId}-in`;
  const output = `${appId}-out`;
  await createTopics([
    { name: input, partitions: PARTITIONS },
    { name: output, partitions: PARTITIONS },
    { name: `${appId}-counts-changelog`, partitions: PARTITIONS, compact: true },
  ]);
  created.push(input, output, `${appId}-counts-changelog`);
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-offsets-'));
  dirs.push(stateDir);
  return { appId, input, output, stateDir };
}

async function start(s: Setup, offsetReset: OffsetResetPolicy = 'safe'): Promise<KafkaStreams> {
  const topology = new Topology()
    .addSource('input', { topics: [s.input] })
    .addProcessor('summer', () => new Summer(), 'input')
    .addStateStore({ name: 'counts' }, 'summer')
    .addSink('output', { topic: s.output }, 'summer');
  const streams = new KafkaStreams(topology, {
    clusterKeys: clusterKeysFromSecret(TEST_CLUSTER_SECRET),
    applicationId: s.appId,
    instanceId: 'i0',
    brokers: BROKERS,
    stateDir: s.stateDir,
    commitIntervalMs: 100,
    batchRecordsMax: 500,
    sessionTimeoutMs: 6000,
    logger: log,
    offsetReset,
  });
  running.add(streams);
  await streams.start();
  return streams;
}

async function stop(streams: KafkaStreams): Promise<void> {
  await streams.close();
  running.delete(streams);
}

/** Keys that hash to the partition, so a test can aim at one partition. */
function keysOf(partition: number, count: number): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < count; i++) if (partitionForKey(`k${i}`, PARTITIONS) === partition) keys.push(`k${i}`);
  return keys;
}

async function produceTo(s: Setup, partition: number, ids: string[]): Promise<void> {
  const keys = keysOf(partition, 3);
  await produce(
    ids.map((id, i) => ({
      topic: s.input,
      partition,
      key: Buffer.from(keys[i % keys.length]!),
      value: Buffer.from(JSON.stringify({ id })),
    })),
  );
}

type Output = { id: string; key: string; count: number; partition: number };
async function outputs(s: Setup): Promise<Output[]> {
  return (await readCommitted(s.output, PARTITIONS)).map((r) => JSON.parse(r.value!.toString('utf8')) as Output);
}

async function waitForIds(s: Setup, ids: string[]): Promise<Output[]> {
  return waitFor(
    `outputs ${ids.join(',')}`,
    async () => {
      const out = await outputs(s);
      const seen = new Set(out.map((o) => o.id));
      return ids.every((id) => seen.has(id)) ? out : undefined;
    },
    60_000,
    250,
  );
}

async function waitForStatus(
  streams: KafkaStreams,
  what: string,
  ok: (status: StreamsStatus) => boolean,
): Promise<StreamsStatus> {
  return waitFor(
    what,
    async () => (streams.state === 'RUNNING' && ok(streams.status()) ? streams.status() : undefined),
    60_000,
    100,
  );
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

function admin(): Admin {
  return new Admin({ clientId: 'offsets-test', bootstrapBrokers: BROKERS, timeout: 30_000, retries: 3 });
}

async function committedOffset(s: Setup, partition: number): Promise<bigint> {
  const a = admin();
  try {
    const groups = await a.listConsumerGroupOffsets({
      groups: [{ groupId: s.appId, topics: [{ name: s.input, partitionIndexes: [partition] }] }],
    });
    return groups[0]!.topics[0]!.partitions[0]!.committedOffset;
  } finally {
    await a.close();
  }
}

function configOf(s: Setup) {
  return loadConfig({ APP_ID: s.appId, KAFKA_BROKERS: BROKERS.join(','), TOPIC_INPUT: s.input, LOG_LEVEL: 'silent' });
}

/** Every output id once, and within a key the counts are 1..n: nothing replayed, nothing skipped. */
function expectExactlyOnce(out: Output[]): void {
  const seen = out.map((o) => o.id);
  expect(new Set(seen).size).toBe(seen.length);
  const byKey = new Map<string, number[]>();
  for (const o of out) byKey.set(o.key, [...(byKey.get(o.key) ?? []), o.count]);
  for (const [key, counts] of byKey)
    expect(
      counts.sort((a, b) => a - b),
      key,
    ).toEqual(counts.map((_, i) => i + 1));
}

describe('offsets fail closed', () => {
  it('should start a brand-new application at the log start when it has no offsets and no state, even when the log start is past 0', async () => {
    const s = await setup('offnew');
    await produceTo(s, 1, ids('gone', 4));
    const a = admin();
    try {
      await a.deleteRecords({ topics: [{ name: s.input, partitions: [{ partition: 1, offset: 4n }] }] });
    } finally {
      await a.close();
    }
    await produceTo(s, 0, ids('new0', 3));
    await produceTo(s, 1, ids('new1', 3));
    const streams = await start(s);
    const out = await waitForIds(s, [...ids('new0', 3), ...ids('new1', 3)]);
    expect(out.filter((o) => o.id.startsWith('gone'))).toEqual([]);
    expect(streams.status().stopped).toEqual([]);
    await stop(streams);
  });

  it('should refuse to start a task with state but no committed offset, say why, replay nothing, and run after an offsets reset', async () => {
    const s = await setup('offmiss');
    const first = await start(s);
    await produceTo(s, 0, ids('a0', 5));
    await produceTo(s, 1, ids('a1', 5));
    await waitForIds(s, [...ids('a0', 5), ...ids('a1', 5)]);
    await stop(first);
    const committed = await committedOffset(s, 0);
    expect(committed).toBe(5n);

    // The group's offset for partition 0 is gone (expired after an outage, deleted); its state is not.
    const a = admin();
    try {
      await a.deleteConsumerGroupOffsets({ groupId: s.appId, topics: [{ name: s.input, partitionIndexes: [0] }] });
    } finally {
      await a.close();
    }
    const second = await start(s);
    const status = await waitForStatus(second, 'partition 0 stopped', (st) => st.stopped.length > 0);
    expect(status.stopped).toEqual([
      expect.objectContaining({ topic: s.input, partition: 0, code: 'offsets_missing' }),
    ]);
    expect(status.stopped[0]!.reason).toContain('stores hold data');
    expect(status.stopped[0]!.action).toContain('bankstream offsets reset --group processor');
    expect(status.running).toEqual([1]);
    expect(status.assigned).toEqual([0, 1]);

    await produceTo(s, 0, ids('b0', 3));
    await produceTo(s, 1, ids('b1', 3));
    await waitForIds(s, ids('b1', 3));
    // Partition 0 neither replayed a0-* nor processed b0-*.
    const during = await outputs(s);
    expect(
      during
        .filter((o) => o.partition === 0)
        .map((o) => o.id)
        .sort(),
    ).toEqual(ids('a0', 5).sort());
    await expect(
      resetOffsets(configOf(s), { group: 'processor', topics: [s.input], partition: 0, to: committed, execute: true }),
    ).rejects.toMatchObject({ code: 'group_active' });
    await stop(second);

    const plan = await resetOffsets(configOf(s), {
      group: 'processor',
      topics: [s.input],
      partition: 0,
      to: committed,
      execute: true,
    });
    expect(plan.lines).toEqual([expect.objectContaining({ topic: s.input, partition: 0, current: null, next: 5n })]);
    const third = await start(s);
    const out = await waitForIds(s, ids('b0', 3));
    expect((await waitForStatus(third, 'both running', (st) => st.running.length === 2)).stopped).toEqual([]);
    expectExactlyOnce(out);
    await stop(third);
  });

  it('should stop only the partition whose position is out of range, report it, and run it again after a reset to earliest', async () => {
    const s = await setup('offrange');
    const first = await start(s);
    await produceTo(s, 0, ids('a0', 4));
    await produceTo(s, 1, ids('a1', 4));
    await waitForIds(s, [...ids('a0', 4), ...ids('a1', 4)]);
    await stop(first);

    // Records of partition 0 deleted before they were processed: its committed offset (4) is below the log start (7).
    await produceTo(s, 0, ids('lost', 3));
    const a = admin();
    try {
      await a.deleteRecords({ topics: [{ name: s.input, partitions: [{ partition: 0, offset: 7n }] }] });
    } finally {
      await a.close();
    }
    await produceTo(s, 0, ids('c0', 2));
    const second = await start(s);
    const status = await waitForStatus(second, 'partition 0 stopped', (st) => st.stopped.length > 0);
    expect(status.stopped).toEqual([
      expect.objectContaining({ topic: s.input, partition: 0, code: 'offset_out_of_range' }),
    ]);
    expect(status.stopped[0]!.reason).toContain('position 4');
    expect(status.stopped[0]!.reason).toContain('offsets 7 to 9');
    expect(status.stopped[0]!.action).toContain('--to earliest');
    expect(status.running).toEqual([1]);
    const metrics = new Metrics({ app: s.appId, instance: 'i0' }, { processMetrics: false });
    metrics.bindStreams(second);
    expect(await metrics.registry.getSingleMetricAsString('bankstream_streams_partitions_stopped')).toContain(
      `{topic="${s.input}",partition="0",code="offset_out_of_range"`,
    );

    // The other partition keeps going.
    await produceTo(s, 1, ids('b1', 3));
    await waitForIds(s, ids('b1', 3));
    expect((await outputs(s)).some((o) => o.id.startsWith('c0'))).toBe(false);
    await stop(second);

    const dry = await resetOffsets(configOf(s), {
      group: 'processor',
      topics: [s.input],
      partition: 0,
      to: 'earliest',
      execute: false,
    });
    expect(dry.lines[0]).toMatchObject({ current: 4n, next: 7n, logStart: 7n, logEnd: 9n });
    const every = await resetOffsets(configOf(s), {
      group: 'processor',
      topics: [s.input],
      partition: 'all',
      to: 'earliest',
      execute: false,
    });
    expect(every.lines.map((l) => [l.partition, l.current])).toEqual([
      [0, 4n],
      [1, 7n],
    ]);
    await expect(
      resetOffsets(configOf(s), { group: 'processor', partition: 'all', to: 3n, execute: false }),
    ).rejects.toMatchObject({ code: 'offset_needs_partition' });
    await expect(
      resetOffsets(configOf(s), {
        group: 'processor',
        topics: [s.input],
        partition: 2,
        to: 'earliest',
        execute: false,
      }),
    ).rejects.toMatchObject({ code: 'partition_unknown' });
    expect(await committedOffset(s, 0)).toBe(4n);
    await expect(
      resetOffsets(configOf(s), { group: 'processor', topics: [s.input], partition: 0, to: 100n, execute: true }),
    ).rejects.toBeInstanceOf(OffsetResetError);
    await resetOffsets(configOf(s), {
      group: 'processor',
      topics: [s.input],
      partition: 0,
      to: 'earliest',
      execute: true,
    });
    expect(await committedOffset(s, 0)).toBe(7n);

    const third = await start(s);
    const out = await waitForIds(s, ids('c0', 2));
    expect(out.some((o) => o.id.startsWith('lost'))).toBe(false);
    expect((await waitForStatus(third, 'both running', (st) => st.running.length === 2)).stopped).toEqual([]);
    await stop(third);
  });
});
