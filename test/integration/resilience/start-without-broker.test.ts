// Issue 17, at start: an instance (and the sink alone) started while no broker answers waits for it, saying
// so in its log, instead of exiting; SIGTERM during that wait stops it cleanly. Nothing listens on the
// port used here, so no broker is touched.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Child, killChild, spawnFixture } from '../../helpers/child.ts';
import { prefixedEnv, uniquePrefix } from '../support/kafka.ts';

const CLI = path.resolve('src/cli/main.ts');
/** A port nothing listens on: every connection is refused at once, as with a broker that is down. */
const NO_BROKER = '127.0.0.1:1';

async function waitForOutput(child: Child, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(child.output())) {
    if (child.process.exitCode !== null)
      throw new Error(`exited with ${child.process.exitCode} before printing ${pattern}: ${child.output()}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms: ${child.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('start while the broker is down', () => {
  it('should wait for the broker instead of exiting, and stop with exit code 0 on SIGTERM, when no broker answers at start', async () => {
    const prefix = uniquePrefix('nobroker');
    const env = prefixedEnv(prefix, {
      KAFKA_BROKERS: NO_BROKER,
      INSTANCE_ID: 'i0',
      HTTP_PORT: '0',
      LOG_LEVEL: 'info',
      DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${prefix}`,
    });
    const instance = spawnFixture(CLI, env, ['start', '--no-sink']);
    const sink = spawnFixture(CLI, { ...env, INSTANCE_ID: 'sink' }, ['sink']);
    try {
      for (const child of [instance, sink])
        await waitForOutput(child, /broker unavailable; retrying until it answers/, 60_000);
      // Long past the client's own retries (a few attempts 250 ms apart): still waiting, still alive.
      await new Promise((resolve) => setTimeout(resolve, 8_000));
      expect(instance.process.exitCode).toBeNull();
      expect(sink.process.exitCode).toBeNull();
      instance.process.kill('SIGTERM');
      sink.process.kill('SIGTERM');
      expect(await instance.exited).toBe(0);
      expect(await sink.exited).toBe(0);
      // One line for the outage, not one per attempt.
      expect(instance.output().match(/broker unavailable; retrying until it answers/g)).toHaveLength(1);
    } finally {
      await killChild(instance, 'SIGKILL');
      await killChild(sink, 'SIGKILL');
    }
  }, 120_000);
});
