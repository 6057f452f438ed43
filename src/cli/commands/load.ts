// `bankstream load`: an independent upstream producer (KafkaJS, Java-compatible partitioner) that opens
// and funds accounts, then sends transfers at a target rate for a duration or a count.
import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { LoadOptionsError } from '../../load/errors.ts';

interface LoadFlags {
  accounts: string;
  rate: string;
  duration?: string;
  count?: string;
  skew: string;
  invalid: string;
  seed: string;
  setup: boolean;
  runId?: string;
  accountPrefix: string;
  topic?: string;
  brokers?: string;
  batch: string;
  inflight: string;
  settle: string;
  json: boolean;
}

export function register(program: Command): void {
  program
    .command('load')
    .description(
      'send bank commands to the input topic: open and fund accounts, then transfers at a rate (bounded by --duration or --count)',
    )
    .option('--accounts <n>', 'accounts to open, fund and transfer between', '1000')
    .option('--rate <per-second>', 'transfers per second; 0 = as fast as possible', '1000')
    .option('--duration <time>', 'stop after this long (30s, 2m, 500ms); default 10s when --count is not given')
    .option('--count <n>', 'stop after this many transfer-phase commands')
    .option('--skew <dist>', 'account choice: uniform or zipf:<exponent> (e.g. zipf:1.1)', 'uniform')
    .option(
      '--invalid <share>',
      'share of deliberately invalid commands, 0..1 (bad amounts, unknown accounts, malformed JSON...)',
      '0',
    )
    .option('--seed <n>', 'seed of every random choice', '1')
    .option(
      '--no-setup',
      'do not open and fund the accounts (they exist from an earlier run with the same --account-prefix)',
    )
    .option('--run-id <id>', 'prefix of transfer ids (default: unique per run)')
    .option('--account-prefix <prefix>', 'account ids are <prefix>-<n>', 'acc')
    .option('--topic <name>', 'input topic (default: TOPIC_INPUT)')
    .option('--brokers <list>', 'bootstrap brokers (default: KAFKA_BROKERS)')
    .option('--batch <n>', 'records per produce request', '500')
    .option('--inflight <n>', 'produce requests in flight at once', '4')
    .option('--settle <ms>', 'pause after setup so the processor applies it first', '1000')
    .option('--json', 'print the summary as JSON', false)
    .action(async (flags: LoadFlags) => {
      // Loaded on demand so that other commands do not load the generator.
      const { LoadError, parseDuration, parseSkew, runLoad } = await import('../../load/index.ts');
      const { createProgressReporter, formatSummary } = await import('../../load/progress.ts');
      const config = loadConfig();
      const reporter = await createProgressReporter(process.stderr);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const result = await runLoad({
          brokers: flags.brokers ? flags.brokers.split(',').map((b) => b.trim()) : config.kafkaBrokers,
          security: config.kafkaSecurity,
          topic: flags.topic ?? config.topics.input,
          accounts: integerFlag('accounts', flags.accounts),
          ratePerSecond: Number(flags.rate),
          durationMs:
            flags.duration !== undefined
              ? parseDuration('duration', flags.duration)
              : flags.count === undefined
                ? 10_000
                : undefined,
          count: flags.count !== undefined ? integerFlag('count', flags.count) : undefined,
          skew: parseSkew(flags.skew),
          invalidRatio: Number(flags.invalid),
          seed: integerFlag('seed', flags.seed),
          setup: flags.setup,
          runId: flags.runId,
          accountPrefix: flags.accountPrefix,
          batchRecordsMax: integerFlag('batch', flags.batch),
          inflightBatchesMax: integerFlag('inflight', flags.inflight),
          setupSettleMs: integerFlag('settle', flags.settle),
          progressIntervalMs: process.stderr.isTTY ? 200 : 5000,
          onProgress: (progress) => reporter.update(progress),
          signal: stop.signal,
        });
        reporter.stop();
        console.log(flags.json ? JSON.stringify(result) : formatSummary(result));
        if (result.errors > 0) process.exitCode = 1;
      } catch (error) {
        // Operating and option errors are the user's to fix: one line, no stack.
        if (!(error instanceof LoadError)) throw error;
        reporter.stop();
        console.error(`bankstream load: ${error.message}`);
        process.exitCode = 2;
      } finally {
        reporter.stop();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}

function integerFlag(name: string, text: string): number {
  if (!/^\d+$/.test(text))
    throw new LoadOptionsError(name, `expected a non-negative integer, got ${JSON.stringify(text)}`);
  return Number(text);
}
