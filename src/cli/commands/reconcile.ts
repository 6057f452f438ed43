// `bankstream reconcile`: compares, for a quiet system, the processor's stores (rebuilt from their
// changelogs, and the API when --api-url is given), the outcome topics and Postgres. Prints the
// report and exits 1 on any difference, so scripts and CI can gate on it.
import { type Command, InvalidArgumentError } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { createLogger } from '../../config/logger.ts';
import { formatReport } from '../../ops/reconcile/report.ts';
import { reconcile } from '../../ops/reconcile/reconcile.ts';

interface ReconcileCliOptions {
  apiUrl?: string;
  apiToken?: string;
  waitQuietMs: number;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('reconcile')
    .description('compare store balances, outcome topic totals and Postgres; exit 1 on any difference')
    .option('--api-url <url>', 'also read every balance through the HTTP API (GET /v1/accounts/:id)', httpUrl)
    .option('--api-token <jwt>', 'bearer token for --api-url (default: $BANKSTREAM_API_TOKEN)')
    .option('--wait-quiet-ms <ms>', 'wait this long for the processor and the sink to catch up', milliseconds, 30_000)
    .option('--json', 'print the report as JSON')
    .action(async (options: ReconcileCliOptions) => {
      const config = loadConfig();
      const logger = createLogger(config.logLevel, { component: 'reconcile' });
      const apiToken = options.apiToken ?? process.env.BANKSTREAM_API_TOKEN;
      const report = await reconcile(config, {
        quietTimeoutMs: options.waitQuietMs,
        logger,
        ...(options.apiUrl ? { apiUrl: options.apiUrl } : {}),
        ...(apiToken ? { apiToken } : {}),
      });
      console.log(options.json ? JSON.stringify(report, null, 2) : formatReport(report));
      if (!report.ok) process.exitCode = 1;
    });
}

function httpUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError('expected an http or https URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InvalidArgumentError('expected an http or https URL');
  return text;
}

function milliseconds(text: string): number {
  if (!/^\d{1,9}$/.test(text)) throw new InvalidArgumentError('expected a whole number of milliseconds');
  return Number(text);
}
