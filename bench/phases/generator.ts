// The load generator in its own process (`bankstream load`), so its CPU is not the bench's and the
// measured latency is what an independent upstream producer sees; its summary comes back as JSON.
import type { LoadResult } from '../../src/load/types.ts';
import { type BenchChild, type BenchEnvironment, spawnCli } from '../environment.ts';
import type { BenchSettings } from '../settings.ts';
import { accountPrefix } from './engine.ts';

export interface GeneratorRun {
  child: BenchChild;
  runId: string;
  /** The generator's JSON summary, once it has exited (it stops at its duration, or on stop()). */
  result(): Promise<LoadResult>;
}

export function spawnGenerator(
  bench: BenchEnvironment,
  settings: BenchSettings,
  label: string,
  ratePerSecond: number,
  durationS: number,
): GeneratorRun {
  const runId = `${bench.prefix}-${label}`;
  const skew = settings.skew.kind === 'uniform' ? 'uniform' : `zipf:${settings.skew.exponent}`;
  const child = spawnCli(bench, `load-${label}`, [
    'load',
    '--no-setup',
    '--run-id',
    runId,
    '--account-prefix',
    accountPrefix(bench),
    '--accounts',
    String(settings.accounts),
    '--rate',
    String(Math.max(1, Math.round(ratePerSecond))),
    '--duration',
    `${durationS}s`,
    '--skew',
    skew,
    '--invalid',
    String(settings.invalidRatio),
    '--seed',
    String(settings.seed),
    '--json',
  ]);
  return {
    child,
    runId,
    async result() {
      const code = await child.exited;
      await child.stop();
      const line = child
        .output()
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('{"runId"'));
      if (!line) throw new Error(`the generator exited with ${code} and no summary (see ${child.logFile})`);
      return JSON.parse(line) as LoadResult;
    },
  };
}

/** Outcomes the engine owes for a generator run (transfers plus the invalid ones it answers on failed). */
export function expectedOutcomes(load: LoadResult): number {
  return load.expected.transfers + Object.values(load.expected.failed).reduce((a, b) => a + b, 0);
}
