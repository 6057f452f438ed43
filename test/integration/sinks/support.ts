// What the sink's integration tests share: a prefixed pipeline config on its own database (topics created,
// migrated), a sink started with short timeouts, a bounded wait, and the cleanups that undo them.
import { afterEach } from 'vitest';
import { type Config, loadConfig } from '../../../src/config/config.ts';
import { createLogger } from '../../../src/config/logger.ts';
import { ensureTopics } from '../../../src/ops/topics.ts';
import { migrate } from '../../../src/sinks/migrate.ts';
import { PostgresSink } from '../../../src/sinks/postgres-sink.ts';
import type { SinkTopics } from '../../../src/sinks/records.ts';
import { deleteTopicsWithPrefix, prefixedEnv, uniquePrefix } from '../support/kafka.ts';
import { dropDatabase, uniqueDatabaseUrl } from '../support/postgres.ts';

export const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

export interface Setup {
  config: Config;
  env: Record<string, string>;
  topics: SinkTopics;
}

/** Undone after each test, newest first; a failing cleanup does not stop the others. */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

/** Runs after the current test, with the other cleanups. */
export function onCleanup(...cleanup: Array<() => Promise<void>>): void {
  cleanups.push(...cleanup);
}

export async function setUp(label: string, extraEnv: Record<string, string> = {}): Promise<Setup> {
  const prefix = uniquePrefix(label);
  const databaseUrl = extraEnv.DATABASE_URL ?? uniqueDatabaseUrl(label);
  cleanups.push(
    () => deleteTopicsWithPrefix(prefix),
    () => dropDatabase(databaseUrl),
  );
  const env = prefixedEnv(prefix, {
    PARTITIONS: '3',
    DATABASE_URL: databaseUrl,
    SINK_BATCH_ROWS_MAX: '40',
    SINK_BATCH_MS: '50',
    ...extraEnv,
  });
  const config = loadConfig(env);
  await ensureTopics(config);
  await migrate({ databaseUrl });
  const topics = { completed: config.topics.completed, failed: config.topics.failed, audit: config.topics.audit };
  return { config, env, topics };
}

export function startSink(config: Config): PostgresSink {
  const sink = new PostgresSink({
    config,
    logger,
    backoffMinMs: 50,
    backoffMaxMs: 500,
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 500,
  });
  cleanups.push(() => sink.stop());
  return sink;
}

export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
