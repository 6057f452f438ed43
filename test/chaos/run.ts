// `npm run chaos -- --duration 5m --seed N`: the fault-injection bank test, printing its report and
// exiting non-zero on any violation. Everything it starts runs on 127.0.0.1 and is stopped at the end.
import { Command } from 'commander';
import { FAULT_KINDS, type FaultKind, formatReport, runChaos } from './chaos.ts';

function duration(text: string): number {
  const match = /^(\d+)(ms|s|m)?$/.exec(text.trim());
  if (!match) throw new Error(`--duration: expected e.g. 90s or 5m, got ${JSON.stringify(text)}`);
  const n = Number(match[1]);
  return match[2] === 'm' ? n * 60_000 : match[2] === 'ms' ? n : n * 1000;
}

const options = new Command()
  .name('chaos')
  .option('--duration <time>', 'how long faults are injected (e.g. 90s, 5m)', '2m')
  .option('--seed <n>', 'seed of the workload and of the fault schedule', '1')
  .option('--rate <n>', 'transfers per second sent during the run', '100')
  .option('--holds <n>', 'holds mixed in, each with its posts, voids or expiry (default: one per 8 transfers)')
  .option('--accounts <n>', 'accounts', '40')
  .option('--kafka-port <port>', 'port of the private broker', '19392')
  .option('--postgres-port <port>', 'port of the private PostgreSQL', '55433')
  .option('--standby <n>', 'STANDBY_REPLICAS of the instances', '0')
  .option('--schedule <kinds>', `faults injected first, comma-separated (${FAULT_KINDS.join(', ')})`, '')
  .option('--outage <range>', 'how long a broker-outage keeps the broker down, e.g. 30s-60s', '30s-60s')
  .option('--log-dir <dir>', "write every child process's output there when it ends")
  .parse(process.argv)
  .opts<{
    duration: string;
    seed: string;
    rate: string;
    accounts: string;
    holds?: string;
    kafkaPort: string;
    postgresPort: string;
    standby: string;
    schedule: string;
    outage: string;
    logDir?: string;
  }>();

const schedule = options.schedule
  .split(',')
  .map((k) => k.trim())
  .filter((k) => k !== '');
for (const kind of schedule)
  if (!(FAULT_KINDS as string[]).includes(kind)) throw new Error(`--schedule: unknown fault ${JSON.stringify(kind)}`);
const [outageFrom, outageTo = outageFrom] = options.outage.split('-').map(duration);

const durationMs = duration(options.duration);
const report = await runChaos({
  durationMs,
  seed: Number(options.seed),
  transfers: Math.round((Number(options.rate) * durationMs) / 1000),
  ...(options.holds === undefined ? {} : { holds: Number(options.holds) }),
  accounts: Number(options.accounts),
  kafkaPort: Number(options.kafkaPort),
  postgresPort: Number(options.postgresPort),
  standbyReplicas: Number(options.standby),
  schedule: schedule as FaultKind[],
  brokerOutageMs: [outageFrom!, outageTo!],
  ...(options.logDir ? { logDir: options.logDir } : {}),
  log: (line) => console.log(`[chaos] ${line}`),
});
console.log(formatReport(report));
process.exit(
  report.violations.length === 0 && report.losses === 0 && report.duplicates === 0 && report.unplannedExits.length === 0
    ? 0
    : 1,
);
