// GET /v1/accounts/:id alone, for working on the API's read path: one instance (`bankstream start
// --no-sink`, a child process) on fresh topics of the local broker, `--accounts` accounts opened and funded
// by `bankstream load`, then autocannon for `--seconds` with a teller token signed with the instance's dev
// secret. `--cpu-prof` profiles the instance and prints its hotspots. Everything it creates is removed.
//   node bench/api.perf.ts [--accounts 2000] [--seconds 10] [--connections 32] [--cpu-prof]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { loadConfig } from '../src/config/config.ts';
import { Kafka, logLevel } from 'kafkajs';
import { ensureTopics, plannedTopics } from '../src/ops/topics.ts';
import { summarizeProfile } from './profile.ts';

const { values } = parseArgs({
  options: {
    accounts: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    'cpu-prof': { type: 'boolean', default: false },
    port: { type: 'string', default: '18931' },
  },
});
const accounts = Number(values.accounts);
const CLI = path.resolve(import.meta.dirname, '../src/cli/main.ts');
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
  STATE_DIR: path.join(work, 'state'),
  INSTANCE_ID: 'api0',
  HTTP_HOST: '127.0.0.1',
  HTTP_PORT: values.port,
  AUTH_DEV_SECRET: secret,
  CLUSTER_SECRET: randomBytes(32).toString('hex'),
  LOG_LEVEL: 'warn',
};
const config = loadConfig(env);
const base = `http://127.0.0.1:${values.port}`;
const run = (args: string[], extraNode: string[] = []) =>
  spawn(process.execPath, ['--disable-warning=ExperimentalWarning', ...extraNode, CLI, ...args], {
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });

await ensureTopics(config);
const profileDir = path.join(work, 'profile');
const instance = run(['start', '--no-sink'], values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []);
try {
  const load = run([
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
  await new Promise((resolve) => load.on('exit', resolve));
  const token = await new SignJWT({ role: 'teller' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('perf')
    .setIssuer(config.auth.issuer)
    .setAudience(config.auth.audience)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(secret));
  const headers = { authorization: `Bearer ${token}` };
  await until(
    async () =>
      (await fetch(`${base}/v1/accounts/${appId}-acc-${accounts - 1}`, { headers }).catch(() => undefined))?.status ===
      200,
    120_000,
  );
  const { default: autocannon } = await import('autocannon');
  let next = 0;
  const result = await autocannon({
    url: base,
    connections: Number(values.connections),
    duration: Number(values.seconds),
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
  const latency = result.latency as unknown as Record<string, number>;
  console.log(
    JSON.stringify({
      requestsPerSecond: Math.round(result.requests.average),
      p50Ms: latency['p50'],
      p99Ms: latency['p99'],
      non2xx: result.non2xx,
      errors: result.errors,
      connections: Number(values.connections),
      seconds: Number(values.seconds),
      loadAverage1m: os.loadavg()[0],
    }),
  );
} finally {
  instance.kill('SIGTERM');
  await new Promise((resolve) => instance.on('exit', resolve));
  if (values['cpu-prof']) {
    const [file] = (await readdir(profileDir).catch(() => [])).filter((f) => f.endsWith('.cpuprofile'));
    if (file) {
      const summary = await summarizeProfile(path.join(profileDir, file), 25);
      console.log(`idle ${summary.idlePercent.toFixed(1)}%, gc ${summary.gcPercent.toFixed(1)}%`);
      for (const f of summary.functions)
        console.log(
          `${f.selfPercent.toFixed(1).padStart(5)}%  ${f.name}  ${f.where}${f.callers?.length ? `  ← ${f.callers.slice(0, 2).join(' ← ')}` : ''}`,
        );
      console.log('--- by file');
      for (const f of summary.files.slice(0, 15)) console.log(`${f.selfPercent.toFixed(1).padStart(5)}%  ${f.name}`);
    }
  }
  const admin = new Kafka({ brokers: config.kafkaBrokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.deleteTopics({ topics: plannedTopics(config).map((t) => t.name) }).catch(() => undefined);
  await admin.disconnect();
  await rm(work, { recursive: true, force: true });
}

async function until(probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`not ready after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
