// Restore speed: the engine's state folder is deleted, then an engine started in this process rebuilds
// every store from its changelog. Timed from the start of the rebalance (tasks assigned) to every task
// RUNNING, with the records the engine reports having replayed.
import { rm } from 'node:fs/promises';
import { createBankStreams } from '../../src/app/instance.ts';
import { createLogger } from '../../src/config/logger.ts';
import type { StreamsStatus } from '../../src/runtime/kafka-streams.ts';
import type { BenchEnvironment } from '../environment.ts';
import { pollUntil, round } from '../series.ts';
import type { BenchSettings } from '../settings.ts';

export interface RestoreResult {
  records: number;
  durationS: number;
  perSecond: number;
  /** From KafkaStreams.start() to every task running (producer init and group join included). */
  totalS: number;
  timedOut: boolean;
}

export async function measureRestore(bench: BenchEnvironment, settings: BenchSettings): Promise<RestoreResult> {
  await rm(bench.stateDir, { recursive: true, force: true });
  const config = bench.config;
  const streams = createBankStreams(config, createLogger('warn', { component: 'bench-restore' }));
  let rebalanceAt: number | undefined;
  let runningAt: number | undefined;
  let last: StreamsStatus | undefined;
  streams.onStatus((status) => {
    last = status;
    if (status.state === 'REBALANCING') rebalanceAt ??= performance.now();
    if (status.state === 'RUNNING' && status.running.length === config.partitions) runningAt ??= performance.now();
  });
  const started = performance.now();
  try {
    await streams.start();
    const done = await pollUntil(() => runningAt !== undefined, settings.restoreTimeoutS * 1000, 20);
    const records = last?.restoredRecords ?? 0;
    const durationS = ((runningAt ?? performance.now()) - (rebalanceAt ?? started)) / 1000;
    return {
      records,
      durationS: round(durationS, 2),
      perSecond: durationS > 0 ? Math.round(records / durationS) : 0,
      totalS: round(((runningAt ?? performance.now()) - started) / 1000, 2),
      timedOut: !done,
    };
  } finally {
    await streams.close();
  }
}
