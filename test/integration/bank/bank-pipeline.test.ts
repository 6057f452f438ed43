// The bank topology on the real broker: an independent KafkaJS upstream sends thousands of mixed commands,
// good and bad; read_committed outcomes, the DLQ and the balances must match the workload exactly,
// also across a SIGKILL of the processor.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startInstance } from '../../../src/app/instance.ts';
import { createLogger } from '../../../src/config/logger.ts';
import { killAll, killChild, spawnFixture } from '../../helpers/child.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { deleteTopicsWithPrefix } from '../support/kafka.ts';
import { checkPipeline, expectedOutcomeCount, observe, quiet, sendWithKafkaJs, setupPipeline } from './pipeline.ts';
import { buildWorkload } from './workload.ts';

const prefixes: string[] = [];
const dirs: string[] = [];

async function stateDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-bank-'));
  dirs.push(dir);
  return dir;
}

async function outcomesReached(config: Parameters<typeof observe>[0], count: number) {
  return waitFor(
    `${count} outcomes`,
    async () => {
      const seen = await observe(config);
      return seen.completed.length + seen.failed.length >= count ? seen : undefined;
    },
    120_000,
    1000,
  );
}

/** Waits for every owed outcome and for the last settle legs: nothing left in flight. */
async function quietReached(config: Parameters<typeof observe>[0], count: number) {
  return waitFor(
    `${count} outcomes and nothing in flight`,
    async () => {
      const seen = await observe(config);
      return quiet(seen, count) ? seen : undefined;
    },
    120_000,
    1000,
  );
}

describe('bank pipeline on the real broker', () => {
  afterAll(async () => {
    await killAll();
    for (const prefix of prefixes) await deleteTopicsWithPrefix(prefix);
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('should answer every command exactly once and keep the balances exact when fed by an independent KafkaJS producer', async () => {
    const { prefix, config } = await setupPipeline('bank', await stateDir());
    prefixes.push(prefix);
    const workload = buildWorkload({ accounts: 24, transfers: 3000, seed: 7, prefix });
    const instance = await startInstance({ config, logger: createLogger('warn'), sink: false });
    try {
      await sendWithKafkaJs(config, workload.setup);
      await sendWithKafkaJs(config, workload.commands);
      const seen = await quietReached(config, expectedOutcomeCount(workload));
      // Late duplicates would show up now.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      checkPipeline(workload, await observe(config));
      expect(seen.dlq.length).toBeGreaterThan(0);
    } finally {
      await instance.close();
    }
  });

  it('should still answer every command exactly once after the processor is SIGKILLed mid-stream', async () => {
    const { prefix, env, config } = await setupPipeline('bankkill', await stateDir());
    prefixes.push(prefix);
    const workload = buildWorkload({ accounts: 24, transfers: 6000, seed: 11, prefix });
    await sendWithKafkaJs(config, workload.setup);
    await sendWithKafkaJs(config, workload.commands);
    const cliEnv = { ...env, BATCH_RECORDS_MAX: '200' };
    for (const outcomes of [800, 2500]) {
      const child = spawnFixture(path.resolve('src/cli/main.ts'), cliEnv, ['start', '--no-sink']);
      await outcomesReached(config, outcomes);
      await killChild(child, 'SIGKILL');
    }
    const child = spawnFixture(path.resolve('src/cli/main.ts'), cliEnv, ['start', '--no-sink']);
    await quietReached(config, expectedOutcomeCount(workload));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await killChild(child, 'SIGTERM');
    checkPipeline(workload, await observe(config));
  });
});
