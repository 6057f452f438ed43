// The Postgres sink alone (`bankstream sink`), catching up on every outcome and audit event the engine
// committed: rows written per second, timed through the offsets it stores with the rows.
import { Consumer } from '@platformatic/kafka';
import pg from 'pg';
import { type BenchEnvironment, localBrokerPid, processCpuSeconds, spawnCli } from '../environment.ts';
import { pollUntil, type RateSummary, RateSeries } from '../series.ts';
import type { BenchSettings } from '../settings.ts';

export interface SinkThroughput extends RateSummary {
  rows: number;
  /** Rows per second: rows written / time from the first stored offset to the last. */
  rowsPerSecond: number;
  timedOut: boolean;
}

export async function measureSink(bench: BenchEnvironment, settings: BenchSettings): Promise<SinkThroughput> {
  const topics = [bench.config.topics.completed, bench.config.topics.failed, bench.config.topics.audit];
  const end = await endOffsets(bench.config.kafkaBrokers, topics);
  const db = new pg.Client({ connectionString: bench.config.databaseUrl });
  await db.connect();
  const series = new RateSeries();
  const sink = spawnCli(bench, 'sink', ['sink']);
  try {
    const done = await pollUntil(
      async () => {
        const { rows } = await db.query<{ next: string }>(
          'SELECT coalesce(sum(next_offset), 0)::text AS next FROM sink_offsets WHERE group_id = $1',
          [bench.config.sinkGroupId],
        );
        const next = BigInt(rows[0]?.next ?? '0');
        series.add(Date.now(), Number(next), sink.cpuSeconds(), processCpuSeconds(localBrokerPid()));
        return next >= end;
      },
      settings.sinkTimeoutS * 1000,
      100,
    );
    const { rows } = await db.query<{ rows: string }>(
      `SELECT ((SELECT count(*) FROM transactions) + (SELECT count(*) FROM transfer_conflicts) +
               (SELECT count(*) FROM audit_logs) + (SELECT count(*) FROM sink_rejects))::text AS rows`,
    );
    const written = Number(rows[0]?.rows ?? '0');
    const summary = series.summary();
    // The offsets count transaction markers too; rows are what was written, over the same time.
    return {
      ...summary,
      rows: written,
      rowsPerSecond: summary.durationS > 0 ? Math.round(written / summary.durationS) : 0,
      timedOut: !done,
    };
  } finally {
    await sink.stop();
    await db.end();
  }
}

async function endOffsets(brokers: string[], topics: string[]): Promise<bigint> {
  const consumer = new Consumer({
    clientId: 'bankstream-bench-offsets',
    groupId: `bankstream-bench-offsets-${process.pid}`,
    bootstrapBrokers: brokers,
  });
  try {
    const ends = await consumer.listOffsets({ topics, isolationLevel: 1 });
    let sum = 0n;
    for (const topic of topics) for (const offset of ends.get(topic) ?? []) sum += offset;
    return sum;
  } finally {
    await consumer.close();
  }
}
