// The seed-style baseline (bench/baseline/processor.ts) on the same input topic and data as the engine,
// in its own process, for a fixed window: transfers answered per second, counted like the engine's.
import path from 'node:path';
import type { BaselineOptions } from '../baseline/processor.ts';
import { type BenchEnvironment, localBrokerPid, processCpuSeconds, REPO_ROOT, spawnNode } from '../environment.ts';
import { OutcomeReader } from '../outcome-reader.ts';
import { pollUntil, round, sleep } from '../series.ts';
import type { BenchSettings } from '../settings.ts';

export interface BaselineThroughput {
  /** Transfers answered in the window (after the accounts were opened and funded). */
  transfers: number;
  windowS: number;
  perSecond: number;
  cpuCores: number | undefined;
  /** CPU cores of the broker over the window. */
  brokerCpuCores: number | undefined;
  /** Commands of any kind it processed, setup included. */
  messages: number;
}

const FIRST_TRANSFER_TIMEOUT_MS = 180_000;

export async function measureBaseline(
  bench: BenchEnvironment,
  settings: BenchSettings,
  backlogRunId: string,
): Promise<BaselineThroughput> {
  const prefix = `${backlogRunId}-t-`;
  let transfers = 0;
  let messages = 0;
  const reader = await OutcomeReader.open(
    bench.config.kafkaBrokers,
    [bench.baselineTopics.completed, bench.baselineTopics.failed],
    'earliest',
  );
  reader.start((record) => {
    messages++;
    if (record.key?.toString('utf8').startsWith(prefix)) transfers++;
  });
  const options: BaselineOptions = {
    brokers: bench.config.kafkaBrokers,
    inputTopic: bench.config.topics.input,
    completedTopic: bench.baselineTopics.completed,
    failedTopic: bench.baselineTopics.failed,
    databaseUrl: bench.config.databaseUrl,
    groupId: `${bench.prefix}-baseline`,
  };
  const child = spawnNode(bench, 'baseline', path.join(REPO_ROOT, 'bench', 'baseline', 'main.ts'), [], {
    env: { BENCH_BASELINE: JSON.stringify(options) },
  });
  try {
    // Setup commands (opens, deposits) come first in every partition; the window starts at the first transfer.
    const started = await pollUntil(() => (reader.check(), transfers > 0), FIRST_TRANSFER_TIMEOUT_MS, 100);
    if (!started)
      throw new Error(`the baseline answered no transfer in ${FIRST_TRANSFER_TIMEOUT_MS} ms (see ${child.logFile})`);
    // One more second so the window holds steady-state work only.
    await sleep(1000);
    const brokerPid = localBrokerPid();
    const from = { atMs: Date.now(), transfers, cpu: child.cpuSeconds(), broker: processCpuSeconds(brokerPid) };
    await sleep(settings.baselineS * 1000);
    const to = { atMs: Date.now(), transfers, cpu: child.cpuSeconds(), broker: processCpuSeconds(brokerPid) };
    const windowS = (to.atMs - from.atMs) / 1000;
    return {
      transfers: to.transfers - from.transfers,
      windowS: round(windowS, 2),
      perSecond: Math.round((to.transfers - from.transfers) / windowS),
      cpuCores: from.cpu !== undefined && to.cpu !== undefined ? round((to.cpu - from.cpu) / windowS, 2) : undefined,
      brokerCpuCores:
        from.broker !== undefined && to.broker !== undefined
          ? round((to.broker - from.broker) / windowS, 2)
          : undefined,
      messages,
    };
  } finally {
    await child.stop();
    await reader.stop();
  }
}
