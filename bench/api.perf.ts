// GET /v1/accounts/:id alone, for working on the API's read path, A/B between source trees: one set of
// topics on the local broker, `--accounts` accounts opened and funded once by `bankstream load`, then for
// each round and each root (`--roots a,b`: a checkout of another commit with node_modules; rounds
// alternate the order) one instance of that tree (`bankstream start --no-sink`, a child process, its own
// state folder, the same application id) is started, warmed up for `--warmup` s, and autocannon reads
// random funded accounts for `--seconds` with a teller token signed with the instance's dev secret.
// Per run: requests/s, p50/p99, and the instance process's CPU (user + system, /proc) per request over
// the measured window, which other work on the shared machine disturbs less than the rate; the 1-minute
// load average. `--cpu-prof` profiles each instance and prints the hotspots of the measured window only
// (`--profile-out DIR` keeps that window's .cpuprofile; summarize it with bench/profile.ts).
// Everything it creates is removed.
//   node bench/api.perf.ts [--roots .] [--rounds 1] [--accounts 2000] [--seconds 10] [--connections 32] [--cpu-prof]
//   node bench/api.perf.ts --roots /tmp/api-base,. --rounds 3       (before/after, ratios to the first root)
//   node bench/api.perf.ts --floor    (also a bare node:http server answering one account's body, measured
//                                      alike: what Node's HTTP and the machine allow, beside the instance)
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { Kafka, logLevel } from 'kafkajs';
import { loadConfig } from '../src/config/config.ts';
import { ensureTopics, plannedTopics } from '../src/ops/topics.ts';
import { processCpuSeconds } from './environment.ts';
import { summarizeProfile } from './profile.ts';

const { values } = parseArgs({
  options: {
    roots: { type: 'string', default: '.' },
    rounds: { type: 'string', default: '1' },
    accounts: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '32' },
    'cpu-prof': { type: 'boolean', default: false },
    floor: { type: 'boolean', default: false },
    /** With --cpu-prof: also keep each run's windowed .cpuprofile in this folder. */
    'profile-out': { type: 'string' },
    port: { type: 'string', default: '18931' },
  },
});
/** The pseudo-root of `--floor`: a bare node:http server answering every request with one account's body. */
const FLOOR = '(node:http floor)';
const roots = [...values.roots.split(',').map((r) => path.resolve(r)), ...(values.floor ? [FLOOR] : [])];
/** The body of one account read, taken from the first instance: what the floor server answers. */
let sampleBody = '';
const FLOOR_SERVER = `
const http = require('node:http');
const { randomUUID } = require('node:crypto');
const body = process.env.FLOOR_BODY;
const length = String(Buffer.byteLength(body));
http.createServer({ keepAliveTimeout: 5000 }, (req, res) => {
  res.writeHead(200, ['X-Request-Id', randomUUID(), 'X-Bankstream-Instance', 'api0', 'Cache-Control', 'no-store',
    'Content-Type', 'application/json; charset=utf-8', 'Content-Length', length]);
  res.end(body);
}).listen(Number(process.env.HTTP_PORT), '127.0.0.1');`;
const accounts = Number(values.accounts);
const connections = Number(values.connections);
const work = await mkdtemp(path.join(os.tmpdir(), 'bankstream-api-perf-'));
const secret = randomBytes(32).toString('hex');
const appId = `apiperf${Date.now()}`;
const env: Record<string, string> = {
  ...(process.env as Record<string, string>),
  APP_ID: appId,
  TOPIC_INPUT: `${appId}-transaction_initiated`,
  TOPIC_COMPLETED: `${appId}-transaction_completed`,
  TOPIC_FAILED: `${appId}-transaction_failed`,
  TOPIC_AUDIT: `${appId}-audit_log`,
  TOPIC_DLQ: `${appId}-transaction_initiated.dlq`,
  PARTITIONS: '4',
  INSTANCE_ID: 'api0',
  HTTP_HOST: '127.0.0.1',
  HTTP_PORT: values.port,
  AUTH_DEV_SECRET: secret,
  CLUSTER_SECRET: randomBytes(32).toString('hex'),
  LOG_LEVEL: 'warn',
};
const config = loadConfig(env);
const base = `http://127.0.0.1:${values.port}`;
const IDLE_SAMPLE_MS = 3000;

interface RunResult {
  root: string;
  round: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  cpuMicrosPerRequest: number;
  /** The instance's CPU with no requests, in % of a core (measured just before the warm-up). */
  idleCpuPercent: number;
  /** cpuMicrosPerRequest without the idle CPU of the same window. */
  netCpuMicrosPerRequest: number;
  non2xx: number;
  errors: number;
  loadAverage1m: number;
}

/** A CLI child of one tree: its own state folder per tree (restored from the changelogs on its first start). */
function run(root: string, args: string[], extraNode: string[] = []): ChildProcess {
  if (root === FLOOR)
    return spawn(process.execPath, [...extraNode, '-e', FLOOR_SERVER], {
      env: { ...env, FLOOR_BODY: sampleBody },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  const cli = path.join(root, 'src', 'cli', 'main.ts');
  return spawn(process.execPath, ['--disable-warning=ExperimentalWarning', ...extraNode, cli, ...args], {
    env: { ...env, STATE_DIR: path.join(work, `state-${roots.indexOf(root)}`) },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.once('exit', () => resolve()));

await ensureTopics(config);
const token = await new SignJWT({ role: 'teller' })
  .setProtectedHeader({ alg: 'HS256' })
  .setSubject('perf')
  .setIssuer(config.auth.issuer)
  .setAudience(config.auth.audience)
  .setExpirationTime('1h')
  .sign(new TextEncoder().encode(secret));
const headers = { authorization: `Bearer ${token}` };
const results: RunResult[] = [];
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    const order = round % 2 === 0 ? roots : [...roots].reverse();
    for (const root of order) {
      const result = await measure(root, round, round === 0 && root === order[0]);
      results.push(result);
      console.log(JSON.stringify(result));
    }
  }
  if (results.length > 1) printSummary();
} finally {
  const admin = new Kafka({ brokers: config.kafkaBrokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.deleteTopics({ topics: plannedTopics(config).map((t) => t.name) }).catch(() => undefined);
  await admin.disconnect();
  await rm(work, { recursive: true, force: true });
}

async function measure(root: string, round: number, setup: boolean): Promise<RunResult> {
  const profileDir = path.join(work, `profile-${round}-${roots.indexOf(root)}`);
  const instance = run(
    root,
    ['start', '--no-sink'],
    values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
  );
  let window: [number, number] = [0, 0];
  try {
    if (setup) {
      const load = run(root, [
        'load',
        '--accounts',
        String(accounts),
        '--count',
        '0',
        '--account-prefix',
        `${appId}-acc`,
        '--settle',
        '0',
      ]);
      await exited(load);
    }
    await until(
      async () =>
        (await fetch(`${base}/v1/accounts/${appId}-acc-${accounts - 1}`, { headers }).catch(() => undefined))
          ?.status === 200,
      120_000,
    );
    if (sampleBody === '')
      sampleBody = await (await fetch(`${base}/v1/accounts/${appId}-acc-${accounts - 1}`, { headers })).text();
    // The instance's own CPU with no requests (the idle engine's commits, tails, timers), over 3 s.
    const idleFrom = processCpuSeconds(instance.pid);
    await new Promise((resolve) => setTimeout(resolve, IDLE_SAMPLE_MS));
    const idleCpuPerSecond =
      ((processCpuSeconds(instance.pid) ?? Number.NaN) - (idleFrom ?? Number.NaN)) / (IDLE_SAMPLE_MS / 1000);
    await reads(Number(values.warmup));
    const cpuBefore = processCpuSeconds(instance.pid);
    const started = process.hrtime.bigint();
    const result = await reads(Number(values.seconds));
    const ended = process.hrtime.bigint();
    const cpuAfter = processCpuSeconds(instance.pid);
    window = [Number(started / 1000n), Number(ended / 1000n)];
    const latency = result.latency as unknown as Record<string, number>;
    const cpu = cpuBefore !== undefined && cpuAfter !== undefined ? cpuAfter - cpuBefore : Number.NaN;
    return {
      root: root === FLOOR ? FLOOR : path.relative(process.cwd(), root) || '.',
      round,
      requestsPerSecond: Math.round(result.requests.average),
      p50Ms: latency['p50'] ?? 0,
      p99Ms: latency['p99'] ?? 0,
      cpuMicrosPerRequest: Math.round((cpu * 1e6) / Math.max(1, result.requests.total)),
      idleCpuPercent: Math.round(idleCpuPerSecond * 100),
      netCpuMicrosPerRequest: Math.round(
        ((cpu - idleCpuPerSecond * (Number(ended - started) / 1e9)) * 1e6) / Math.max(1, result.requests.total),
      ),
      non2xx: result.non2xx,
      errors: result.errors,
      loadAverage1m: Math.round(os.loadavg()[0]! * 100) / 100,
    };
  } finally {
    instance.kill('SIGTERM');
    await exited(instance);
    if (values['cpu-prof']) await printProfile(profileDir, window);
  }
}

async function reads(seconds: number) {
  const { default: autocannon } = await import('autocannon');
  let next = 0;
  return autocannon({
    url: base,
    connections,
    duration: seconds,
    headers,
    requests: [
      {
        method: 'GET',
        setupRequest: (request) => ({
          ...request,
          path: `/v1/accounts/${appId}-acc-${(next = (next + 7919) % accounts)}`,
        }),
      },
    ],
  });
}

/** The profile's samples inside the measured window (V8's profile clock and hrtime are both CLOCK_MONOTONIC). */
async function printProfile(profileDir: string, [fromUs, toUs]: [number, number]): Promise<void> {
  const [file] = (await readdir(profileDir).catch(() => [])).filter((f) => f.endsWith('.cpuprofile'));
  if (!file) return;
  const profile = JSON.parse(await readFile(path.join(profileDir, file), 'utf8')) as {
    startTime: number;
    endTime: number;
    samples: number[];
    timeDeltas: number[];
  };
  const samples: number[] = [];
  const deltas: number[] = [];
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i]!;
    if (at < fromUs || at > toUs) continue;
    samples.push(profile.samples[i]!);
    deltas.push(profile.timeDeltas[i]!);
  }
  const windowed = path.join(profileDir, 'window.cpuprofile');
  await writeFile(windowed, JSON.stringify({ ...profile, samples, timeDeltas: deltas }));
  if (values['profile-out'])
    await writeFile(
      path.join(values['profile-out'], `${path.basename(profileDir)}-window.cpuprofile`),
      await readFile(windowed),
    );
  const summary = await summarizeProfile(windowed, 30);
  console.log(
    `profile of the measured window: ${(summary.totalMs / 1000).toFixed(1)} s, idle ${summary.idlePercent.toFixed(1)}%, gc ${summary.gcPercent.toFixed(1)}%`,
  );
  for (const f of summary.functions)
    console.log(
      `${f.selfPercent.toFixed(1).padStart(5)}%  ${f.name}  ${f.where}${f.callers?.length ? `  ← ${f.callers.slice(0, 2).join(' ← ')}` : ''}`,
    );
  console.log('--- by file');
  for (const f of summary.files.slice(0, 20)) console.log(`${f.selfPercent.toFixed(1).padStart(5)}%  ${f.name}`);
}

function printSummary(): void {
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const rootOf = (r: RunResult) => (r.root === FLOOR ? FLOOR : path.resolve(r.root));
  const first = results.filter((r) => rootOf(r) === roots[0]);
  const baseRps = median(first.map((r) => r.requestsPerSecond));
  const baseCpu = median(first.map((r) => r.cpuMicrosPerRequest));
  const baseNet = median(first.map((r) => r.netCpuMicrosPerRequest));
  console.log(
    '| root | req/s (median) | ratio | p99 ms (median) | CPU µs/request (median) | ratio | net of idle | ratio | per round req/s |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const root of roots) {
    const mine = results.filter((r) => rootOf(r) === root);
    const rps = median(mine.map((r) => r.requestsPerSecond));
    const cpu = median(mine.map((r) => r.cpuMicrosPerRequest));
    const net = median(mine.map((r) => r.netCpuMicrosPerRequest));
    console.log(
      `| ${mine[0]?.root} | ${rps} | ${(rps / baseRps).toFixed(2)}× | ${median(mine.map((r) => r.p99Ms))} | ${cpu} | ${(cpu / baseCpu).toFixed(2)}× | ${net} | ${(net / baseNet).toFixed(2)}× | ${mine.map((r) => r.requestsPerSecond).join(', ')} |`,
    );
  }
}

async function until(probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`not ready after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
