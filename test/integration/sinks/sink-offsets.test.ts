// The sink's offsets fail closed too (src/kafka/offset-reset.ts), on the real broker and Postgres: a
// fresh database starts every partition at its log start; a used one with a partition's row missing
// stops that partition (its records may be sunk already); an out-of-range stored offset stops that
// partition; the others go on, and `bankstream offsets reset --group sink` heals it.
import { Admin } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/metrics/metrics.ts';
import { resetOffsets } from '../../../src/ops/offsets.ts';
import { TEST_BROKERS } from '../support/kafka.ts';
import { query } from '../support/postgres.ts';
import { buildScenario, createTestProducer, endOffsets } from './fixtures.ts';
import { type Setup, onCleanup, setUp, startSink, waitFor } from './support.ts';

const TEST_TIMEOUT_MS = 120_000;
async function storedOffsets(s: Setup): Promise<Map<string, bigint>> {
  const rows = await query<{ topic: string; partition: number; next_offset: string }>(
    s.config.databaseUrl,
    'SELECT topic, partition, next_offset FROM sink_offsets WHERE group_id = $1',
    [s.config.sinkGroupId],
  );
  return new Map(rows.map((r) => [`${r.topic}:${r.partition}`, BigInt(r.next_offset)]));
}

/** Every partition but `except` has its stored offset at the end. */
async function caughtUp(s: Setup, except?: string): Promise<boolean> {
  const ends = await endOffsets([s.topics.completed, s.topics.failed, s.topics.audit]);
  const stored = await storedOffsets(s);
  return [...ends].every(([key, end]) => key === except || stored.get(key) === end);
}

async function transferIds(s: Setup): Promise<string[]> {
  return (
    await query<{ transfer_id: string }>(
      s.config.databaseUrl,
      'SELECT transfer_id FROM transactions ORDER BY transfer_id',
    )
  ).map((r) => r.transfer_id);
}

describe('sink offsets fail closed', () => {
  it(
    'should give every partition a row at its log start when the database is fresh',
    async () => {
      const s = await setUp('sinkfresh');
      const sink = startSink(s.config);
      await sink.start();
      await waitFor('every partition stored', async () => (await storedOffsets(s)).size === 9);
      expect([...(await storedOffsets(s)).values()].every((o) => o === 0n)).toBe(true);
      expect(sink.status().stoppedPartitions).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should stop a partition whose row is missing in a used database, keep the others, and run it after a reset',
    async () => {
      const s = await setUp('sinkmiss');
      const producer = await createTestProducer(`${s.config.appId}-producer`, s.topics);
      onCleanup(() => producer.close());
      await producer.produce(buildScenario(s.topics, 120, 6, 1, 'm1').committed);
      const first = startSink(s.config);
      await first.start();
      await waitFor('the sink to catch up', () => caughtUp(s));
      await first.stop();
      const sunk = await transferIds(s);
      const ends = await endOffsets([s.topics.completed]);
      const victim = [...ends].find(([, end]) => end > 0n)!;
      const partition = Number(victim[0].split(':')[1]);
      const before = (await storedOffsets(s)).get(victim[0])!;
      await query(
        s.config.databaseUrl,
        'DELETE FROM sink_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3',
        [s.config.sinkGroupId, s.topics.completed, partition],
      );

      await producer.produce(buildScenario(s.topics, 60, 6, 2, 'm2').committed);
      const second = startSink(s.config);
      await second.start();
      await waitFor('the partition stopped', () => second.status().stoppedPartitions.length > 0);
      expect(second.status().stoppedPartitions).toEqual([
        expect.objectContaining({ topic: s.topics.completed, partition, code: 'offsets_missing' }),
      ]);
      expect(second.status().stoppedPartitions[0]!.action).toContain('bankstream offsets reset --group sink');
      await waitFor('the other partitions to catch up', () => caughtUp(s, victim[0]));
      expect((await storedOffsets(s)).has(victim[0])).toBe(false);
      await expect(
        resetOffsets(s.config, { group: 'sink', topics: [s.topics.completed], partition, to: before, execute: true }),
      ).rejects.toMatchObject({ code: 'group_active' });
      await second.stop();

      const plan = await resetOffsets(s.config, {
        group: 'sink',
        topics: [s.topics.completed],
        partition,
        to: before,
        execute: true,
      });
      expect(plan.lines[0]).toMatchObject({ current: null, next: before });
      const third = startSink(s.config);
      await third.start();
      await waitFor('the healed sink to catch up', () => caughtUp(s));
      expect(third.status().stoppedPartitions).toEqual([]);
      const all = await transferIds(s);
      expect(all.length).toBe(new Set(all).size);
      expect(sunk.every((id) => all.includes(id))).toBe(true);
      expect(all.some((id) => id.startsWith('m2-'))).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should stop only the partition whose stored offset is out of range, report it, and run it after a reset to earliest',
    async () => {
      const s = await setUp('sinkrange');
      const producer = await createTestProducer(`${s.config.appId}-producer`, s.topics);
      onCleanup(() => producer.close());
      await producer.produce(buildScenario(s.topics, 60, 6, 1, 'r1').committed);
      const first = startSink(s.config);
      await first.start();
      await waitFor('the sink to catch up', () => caughtUp(s));
      await first.stop();

      // Records of one completed partition deleted before the sink read them: its stored offset < log start.
      await producer.produce(buildScenario(s.topics, 60, 6, 2, 'r2').committed);
      const ends = await endOffsets([s.topics.completed]);
      const stored = await storedOffsets(s);
      const victim = [...ends].find(([key, end]) => end > (stored.get(key) ?? 0n))!;
      const partition = Number(victim[0].split(':')[1]);
      const admin = new Admin({ clientId: 'sink-offsets-test', bootstrapBrokers: TEST_BROKERS });
      try {
        await admin.deleteRecords({
          topics: [{ name: s.topics.completed, partitions: [{ partition, offset: victim[1] }] }],
        });
      } finally {
        await admin.close();
      }

      const second = startSink(s.config);
      await second.start();
      await waitFor('the partition stopped', () => second.status().stoppedPartitions.length > 0);
      const stop = second.status().stoppedPartitions[0]!;
      expect(stop).toMatchObject({ topic: s.topics.completed, partition, code: 'offset_out_of_range' });
      expect(stop.reason).toContain(`position ${stored.get(victim[0])}`);
      expect(stop.action).toContain('--to earliest');
      const metrics = new Metrics({ app: s.config.appId, instance: 'i0' }, { processMetrics: false });
      metrics.bindSink(second);
      expect(await metrics.registry.getSingleMetricAsString('bankstream_sink_partitions_stopped')).toContain(
        `{topic="${s.topics.completed}",partition="${partition}",code="offset_out_of_range"`,
      );
      await waitFor('the other partitions to catch up', () => caughtUp(s, victim[0]));
      await second.stop();

      await resetOffsets(s.config, {
        group: 'sink',
        topics: [s.topics.completed],
        partition,
        to: 'earliest',
        execute: true,
      });
      expect((await storedOffsets(s)).get(victim[0])).toBe(victim[1]);
      const third = startSink(s.config);
      await third.start();
      await waitFor('the healed sink to catch up', () => caughtUp(s));
      expect(third.status().stoppedPartitions).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
