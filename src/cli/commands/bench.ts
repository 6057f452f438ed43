// `bankstream bench` (also `npm run bench`): end-to-end benchmark of the pipeline against the seed-style
// baseline, on the local broker and PostgreSQL; results in bench/results/ and a markdown table.
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';

interface BenchFlags {
  quick: boolean;
  accounts?: string;
  transfers?: string;
  latencyDuration?: string;
  baselineDuration?: string;
  apiDuration?: string;
  apiConnections: string;
  batchRecordsMax: string;
  skew: string;
  invalid: string;
  seed: string;
  cpuProf: boolean;
  keep: boolean;
  resultsDir?: string;
  startKafka: boolean;
  waitQuiet: string;
}

export function register(program: Command): void {
  program
    .command('bench')
    .description(
      'benchmark the broker alone, then throughput (1 and 2 instances), latency curve, API, restore, sink and a seed-style baseline (≤ 10 min; --quick ≈ 3 min)',
    )
    .option('--quick', 'the smoke preset (about 3 minutes; writes no README section)', false)
    .option('--accounts <n>', 'accounts (default: 2000 quick, 10000 full)')
    .option('--transfers <n>', 'backlog transfers for the throughput phase (default: 60000 quick, 320000 full)')
    .option('--latency-duration <time>', 'each point of the latency curve (default: 8s quick, 20s full)')
    .option('--baseline-duration <time>', 'the baseline window; 0 skips it (default: 12s quick, 30s full)')
    .option('--api-duration <time>', 'each API phase, idle and at half load (default: 5s quick, 10s full)')
    .option('--api-connections <n>', 'concurrent HTTP connections', '32')
    .option('--batch-records-max <n>', "the engine's BATCH_RECORDS_MAX (default: the product default, 15000)", '15000')
    .option('--skew <dist>', 'account choice: uniform or zipf:<exponent>', 'uniform')
    .option('--invalid <share>', 'share of invalid commands in every phase', '0')
    .option('--seed <n>', 'seed of the load generator', '1')
    .option('--cpu-prof', 'profile the engine process (node --cpu-prof) and summarize the hotspots', false)
    .option('--keep', 'keep the work folder (logs, state, profiles) after the run', false)
    .option('--results-dir <dir>', 'where the results JSON goes (default bench/results)')
    .option(
      '--wait-quiet <time>',
      'first wait (at most this long) until the 1-min load average is below half the cores',
      '0s',
    )
    .option('--no-start-kafka', 'fail rather than start the local broker when none answers')
    .action(async (flags: BenchFlags) => {
      // Loaded on demand: the bench and its dependencies are not needed by the other commands.
      const { parseDuration, parseSkew } = await import('../../load/options.ts');
      const { PRESETS, RESULTS_DIR } = await import('../../../bench/settings.ts');
      const { runBench } = await import('../../../bench/run-bench.ts');
      const config = loadConfig();
      const preset = flags.quick ? 'quick' : 'full';
      const defaults = PRESETS[preset];
      const seconds = (name: string, text: string | undefined, fallback: number) =>
        text === undefined ? fallback : parseDuration(name, text) / 1000;
      const workDir = path.join(os.tmpdir(), `bankstream-bench-${process.pid}`);
      const outcome = await runBench(
        {
          ...defaults,
          preset,
          brokers: config.kafkaBrokers,
          postgresUrl: config.databaseUrl,
          partitions: config.partitions,
          commitIntervalMs: config.commitIntervalMs,
          commitWhenCaughtUp: config.commitWhenCaughtUp,
          fetchMaxWaitMs: config.fetchMaxWaitMs,
          fetchMinBytes: config.fetchMinBytes,
          batchRecordsMax: positive('batch-records-max', flags.batchRecordsMax),
          accounts: flags.accounts === undefined ? defaults.accounts : positive('accounts', flags.accounts),
          backlogTransfers:
            flags.transfers === undefined ? defaults.backlogTransfers : positive('transfers', flags.transfers),
          latencyS: seconds('latency-duration', flags.latencyDuration, defaults.latencyS),
          latencyWarmupS: 3,
          baselineS: seconds('baseline-duration', flags.baselineDuration, defaults.baselineS),
          apiS: seconds('api-duration', flags.apiDuration, defaults.apiS),
          apiConnections: positive('api-connections', flags.apiConnections),
          skew: parseSkew(flags.skew),
          invalidRatio: Number(flags.invalid),
          seed: positive('seed', flags.seed),
          cpuProfile: flags.cpuProf,
          profileDir: path.join(os.tmpdir(), `bankstream-bench-profiles-${process.pid}`),
          resultsDir: flags.resultsDir ?? RESULTS_DIR,
          workDir,
          keep: flags.keep,
          startKafka: flags.startKafka,
          quietWaitS: parseDuration('wait-quiet', flags.waitQuiet) / 1000,
        },
        (line) => console.error(line),
      );
      console.log(outcome.table);
      console.log(`\nresults: ${outcome.file}`);
      if (flags.cpuProf) console.log(`profiles: ${path.join(os.tmpdir(), `bankstream-bench-profiles-${process.pid}`)}`);
      if (outcome.results.profile) {
        const { formatProfile } = await import('../../../bench/profile.ts');
        console.log(`\n${formatProfile(outcome.results.profile)}`);
      }
      if (outcome.results.failures.length > 0) process.exitCode = 1;
    });
}

function positive(name: string, text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw Object.assign(new Error(`--${name}: expected a positive integer, got ${JSON.stringify(text)}`), {
      code: 'bench_option_invalid',
    });
  return Number(text);
}
