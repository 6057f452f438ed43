// `bankstream dev`: the README's quick start. Brings up a complete local stack (Kafka, PostgreSQL —
// embedded when none answers —, schema, topics, one instance with sink and API, demo data, a light
// load), prints where everything is, and on Ctrl-C stops exactly what it started.
import { type Command, InvalidArgumentError } from 'commander';
import path from 'node:path';
import { DevAbortedError, type DevSummary, DevStack, defaultDevHome } from '../../dev/stack.ts';
import { DEMO_PASSWORD, DEMO_USERS } from '../../dev/demo.ts';
import { type DevReporter, stderrReporter } from '../../dev/process.ts';

interface DevCommandOptions {
  home?: string;
  embeddedPostgres: boolean;
  reset: boolean;
  seed: boolean;
  load: boolean;
  loadRate: number;
  readyTimeout: number;
}

export function register(program: Command): void {
  program
    .command('dev')
    .description(
      'run the whole local stack (Kafka, PostgreSQL, one instance with sink and API, demo data, light load) until Ctrl-C',
    )
    .option(
      '--home <dir>',
      'dev folder for the embedded PostgreSQL and instance state (default $BANKSTREAM_HOME, else .bankstream/ in the project)',
    )
    .option('--embedded-postgres', 'use the embedded PostgreSQL even when DATABASE_URL answers', false)
    .option('--reset', 'delete the dev PostgreSQL data and instance state first (Kafka topics are kept)', false)
    .option('--no-seed', 'do not create the demo accounts')
    .option('--no-load', 'do not run the light demo load')
    .option('--load-rate <n>', 'demo load, transfers per second', positiveInt, 5)
    .option('--ready-timeout <seconds>', 'give up when the stack is not ready within this time', positiveInt, 120)
    .action(async (options: DevCommandOptions) => {
      process.exitCode = await runDev(options);
    });
}

function positiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 100_000)
    throw new InvalidArgumentError('expected an integer from 1 to 100000');
  return Number(value);
}

/** Exit codes: 0 stopped by Ctrl-C/SIGTERM, 1 start-up failed, 3 the instance failed while running, 130 forced. */
async function runDev(options: DevCommandOptions): Promise<number> {
  const reporter = stderrReporter();
  const stack = new DevStack({
    home: path.resolve(options.home ?? defaultDevHome(process.env)),
    embeddedPostgres: options.embeddedPostgres,
    reset: options.reset,
    seed: options.seed,
    loadRate: options.load ? options.loadRate : 0,
    readyTimeoutMs: options.readyTimeout * 1000,
    env: process.env,
    reporter,
  });
  let signals = 0;
  let stopRequested: (signal: NodeJS.Signals) => void = () => {};
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => (stopRequested = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      reporter.note(`${signal}: stopping what bankstream dev started (again to force)`);
      stack.abort();
      stopRequested(signal);
      return;
    }
    reporter.note(`${signal} again: forcing the exit; servers started here are told to shut down immediately`);
    stack.kill();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    let summary: DevSummary;
    try {
      summary = await stack.start();
    } catch (error) {
      if (!(error instanceof DevAbortedError)) reporter.note(`start-up failed: ${(error as Error).message}`);
      await stopQuietly(stack, reporter);
      return error instanceof DevAbortedError ? 0 : 1;
    }
    process.stdout.write(formatSummary(summary));
    const fatal = stack.instance!.streams.done().then(
      () => 'stopped' as const,
      (error: unknown) => {
        reporter.note(`the stream processor failed: ${(error as Error).message}`);
        return 'failed' as const;
      },
    );
    const ended = await Promise.race([stopSignal, fatal]);
    const stopped = await stopQuietly(stack, reporter);
    if (stopped) reporter.note('stopped');
    return ended === 'failed' ? 3 : stopped ? 0 : 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

async function stopQuietly(stack: DevStack, reporter: DevReporter): Promise<boolean> {
  try {
    await stack.stop();
    return true;
  } catch (error) {
    reporter.note(`stopped with an error: ${(error as Error).message}`);
    return false;
  }
}

/** The banner's warning: a dev broker has no ACLs; say what still holds and what does not. */
function securityWarning(config: DevSummary['config']): string[] {
  const protocol = config.kafkaSecurity.protocol;
  return [
    `WARNING: this broker has no ACLs${protocol === 'PLAINTEXT' ? ' and no authentication (PLAINTEXT)' : ''}: anyone who reaches it`,
    '  can read every topic and write any command. Internal legs and changelog records carry a MAC under the',
    '  cluster secret, so forged ones are refused (DLQ, bankstream_internal_records_rejected_total), but a verbatim',
    '  copy of a real one is not: never expose this broker. Production: SASL/SCRAM + `bankstream acls apply`',
    '  (docker-compose.yml and deploy/k8s do; see README "Security" and docs/security.md).',
  ];
}

/** The ready block on stdout: one "label  value" line each, easy to read and to grep. */
export function formatSummary(summary: DevSummary): string {
  const { config, kafka, postgres, api } = summary;
  const lines: string[] = ['', 'bankstream dev is ready'];
  const row = (label: string, value: string) => lines.push(`  ${label.padEnd(11)} ${value}`);
  row(
    'Kafka',
    `${kafka.brokers.join(',')}${kafka.startedHere ? ' (started here, stopped on exit)' : ' (already running, left running)'}`,
  );
  row('PostgreSQL', `${postgres.url}${postgres.embedded ? ` (embedded, data in ${postgres.dataDir})` : ''}`);
  row('API', `${api.baseUrl}${api.up ? '' : ' (not answering on /healthz)'}`);
  row('health', `${api.baseUrl}/healthz  ${api.baseUrl}/readyz`);
  row('metrics', `${api.baseUrl}/metrics  (admin token, or MANAGEMENT_PORT without one)`);
  row('console', `${api.baseUrl}/console  (log in as admin, password ${DEMO_PASSWORD})`);
  row('token', api.token ? `${api.token}\n              (${api.tokenNote})` : `(${api.tokenNote})`);
  row(
    'instance',
    `${config.instanceId} of app ${config.appId}, ${config.partitions} partitions, state in ${config.stateDir}`,
  );
  for (const account of summary.demo)
    row('demo', `${account.accountId} (owner ${account.ownerId}): ${account.balance} ${account.currency}`);
  if (summary.demo.length > 0)
    row('users', `${DEMO_USERS.map((user) => `${user.id} (${user.role})`).join(', ')}; password ${DEMO_PASSWORD}`);
  row('load', summary.loadRate > 0 ? `${summary.loadRate} transfers/s on demo-load-0..5` : 'off');
  row(
    'secret',
    summary.clusterSecretFile
      ? `CLUSTER_SECRET generated once, kept in ${summary.clusterSecretFile} (mode 600)`
      : 'CLUSTER_SECRET from the environment',
  );
  lines.push('', ...securityWarning(config));
  lines.push('', 'Try:');
  if (summary.demo.length > 0) {
    const auth = api.token ? `-H "Authorization: Bearer ${api.token}" ` : '';
    lines.push(`  curl -s ${auth}${api.baseUrl}/v1/accounts/${summary.demo[0]!.accountId}`);
    lines.push(
      `  curl -s -X POST ${api.baseUrl}/v1/auth/token -H 'content-type: application/json' -d '{"username":"alice","password":"${DEMO_PASSWORD}"}'`,
    );
    lines.push(`  psql '${postgres.url}' -c 'SELECT id, balance, status FROM accounts ORDER BY id'`);
  }
  lines.push('Ctrl-C stops what bankstream dev started.', '');
  return lines.join('\n') + '\n';
}
