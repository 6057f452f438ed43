// Two instances against one on the same backlog: a second application (its own APP_ID, so its own
// group, legs, changelogs and output topics) reads the same input topic from its start with two
// `bankstream start --no-sink` processes, and the bench counts its transfer outcomes as it did for one.
// It also replays the setup commands (accounts, deposits) first; the sustained window (10 % to 90 % of
// the backlog's outcomes) leaves that start-up out.
import path from 'node:path';
import type { LoadResult } from '../../src/load/types.ts';
import { loadConfig } from '../../src/config/config.ts';
import { ensureTopics } from '../../src/ops/topics.ts';
import {
  type BenchChild,
  type BenchEnvironment,
  freePort,
  localBrokerPid,
  processCpuSeconds,
  spawnCli,
} from '../environment.ts';
import { OutcomeReader } from '../outcome-reader.ts';
import { pollUntil, type RateSummary, RateSeries, sleep } from '../series.ts';
import type { BenchSettings } from '../settings.ts';
import { expectedOutcomes } from './generator.ts';

export interface ScaleThroughput extends RateSummary {
  instances: number;
  transfers: number;
  timedOut: boolean;
}

export async function measureInstances(
  bench: BenchEnvironment,
  settings: BenchSettings,
  backlog: LoadResult,
  instances: number,
): Promise<ScaleThroughput> {
  const appId = `${bench.prefix}x${instances}`;
  const env: Record<string, string> = {
    ...bench.env,
    APP_ID: appId,
    TOPIC_COMPLETED: `${appId}-transaction_completed`,
    TOPIC_FAILED: `${appId}-transaction_failed`,
    TOPIC_AUDIT: `${appId}-audit_log`,
    TOPIC_DLQ: `${appId}-transaction_initiated.dlq`,
  };
  const config = loadConfig(env);
  await ensureTopics(config);
  const expected = expectedOutcomes(backlog);
  const prefix = `${backlog.runId}-t-`;
  let decided = 0;
  const reader = await OutcomeReader.open(
    config.kafkaBrokers,
    [config.topics.completed, config.topics.failed],
    'earliest',
  );
  reader.start((record) => {
    if (record.key?.toString('utf8').startsWith(prefix)) decided++;
  });
  const children: BenchChild[] = [];
  for (let i = 0; i < instances; i++)
    children.push(
      spawnCli(bench, `engine-${appId}-${i}`, ['start', '--no-sink'], [], {
        ...env,
        INSTANCE_ID: `${appId}-${i}`,
        STATE_DIR: path.join(bench.workDir, `state-${appId}-${i}`),
        HTTP_PORT: String(await freePort()),
      }),
    );
  const series = new RateSeries();
  const brokerPid = localBrokerPid();
  try {
    const done = await pollUntil(
      () => {
        reader.check();
        for (const child of children) child.assertRunning();
        const cpu = children.map((c) => c.cpuSeconds());
        const total = cpu.every((c) => c !== undefined) ? cpu.reduce((a, b) => a! + b!, 0) : undefined;
        series.add(Date.now(), decided, total, processCpuSeconds(brokerPid));
        return decided >= expected;
      },
      settings.engineTimeoutS * 1000,
      100,
    );
    await sleep(200);
    return { ...series.summary(), instances, transfers: expected, timedOut: !done };
  } finally {
    // The children first: a reader that failed (and may fail again in stop) must not leave two engines
    // running through the later phases.
    try {
      await Promise.all(children.map((c) => c.stop(30_000)));
    } finally {
      await reader.stop();
    }
  }
}
