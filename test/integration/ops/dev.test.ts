// `bankstream dev` end to end, as a newcomer runs it.
//   1. DATABASE_URL points at a closed port: the command brings up its embedded PostgreSQL, then the
//      instance, the demo data and the load; the printed balances are in PostgreSQL and in the API;
//      one Ctrl-C (SIGINT) stops everything it started and nothing else (the shared broker keeps running).
//   2. No broker answers at KAFKA_BROKERS: it starts the local one (scripts/kafka.sh) and stops it on
//      exit; the reachable DATABASE_URL is used as it is.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { brokersAnswer } from '../../../src/dev/kafka.ts';
import { deleteTopicsWithPrefix, prefixedEnv, TEST_BROKERS, uniquePrefix } from '../support/kafka.ts';
import { dropDatabase, query, uniqueDatabaseUrl } from '../support/postgres.ts';

const CLI = fileURLToPath(new URL('../../../bin/bankstream', import.meta.url));
const READY_TIMEOUT_MS = 75_000;
const STOP_TIMEOUT_MS = 30_000;

interface Running {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runCli(args: string[], env: Record<string, string>): Running {
  const child = spawn(CLI, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => out, exited };
}

async function waitForLine(running: Running, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(running.output())) {
    if (running.child.exitCode !== null || running.child.signalCode !== null)
      throw new Error(`bankstream dev exited before ${pattern}:\n${running.output()}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${running.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A loopback port nothing listens on (bound once by the OS, then released). */
async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}

/**
 * A free port whose successor is free too (scripts/kafka.sh puts the controller on port + 1), taken
 * below the kernel's ephemeral range (32768+): a port handed out by `listen(0)` is an ephemeral one,
 * which an outgoing connection may take again before the broker binds it (seen once: the broker died
 * at start-up on such a pair).
 */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000) * 2;
    if ((await canListen(port)) && (await canListen(port + 1))) return port;
  }
  throw new Error('no pair of free ports');
}

async function canListen(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function portOpen(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

describe('bankstream dev', () => {
  it('should start an embedded PostgreSQL, serve the demo balances and stop everything on SIGINT when DATABASE_URL is unreachable', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'bankstream-dev-'));
    // As root the embedded server runs as another user, which must be able to reach the folder.
    await chmod(home, 0o755);
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const prefix = uniquePrefix('dev');
    cleanups.push(() => deleteTopicsWithPrefix(prefix));
    const closedPort = await freePort();
    const httpPort = await freePort();
    const env = prefixedEnv(prefix, {
      PARTITIONS: '3',
      HTTP_PORT: String(httpPort),
      DATABASE_URL: `postgres://postgres@127.0.0.1:${closedPort}/bankstream_dev`,
      STATE_DIR: '',
      // No cluster secret given: dev makes one and keeps it in its home (the API requires one).
      CLUSTER_SECRET: '',
    });

    const dev = runCli(['dev', '--home', home, '--load-rate', '2', '--ready-timeout', '70'], env);
    cleanups.push(async () => {
      if (dev.child.exitCode === null && dev.child.signalCode === null) dev.child.kill('SIGKILL');
    });
    await waitForLine(dev, /^bankstream dev is ready$/m, READY_TIMEOUT_MS);

    const output = dev.output();
    expect(output).toMatch(
      /no PostgreSQL answers at postgres:\/\/postgres@127\.0\.0\.1:\d+\/bankstream_dev \(ECONNREFUSED\); using an embedded one/,
    );
    const databaseUrl = /^ {2}PostgreSQL +(postgres:\/\/\S+) \(embedded, data in (\S+)\)$/m.exec(output);
    expect(databaseUrl, output).not.toBeNull();
    const [, url, dataDir] = databaseUrl!;
    expect(dataDir).toBe(path.join(home, 'pg', 'data'));
    expect(output).toMatch(/^ {2}demo +demo-alice \(owner alice\): 874\.50 EUR$/m);
    expect(output).toMatch(/^ {2}demo +demo-bob \(owner bob\): 375\.50 EUR$/m);

    const rows = await query<{ id: string; balance: string; status: string }>(
      url!,
      `SELECT id, balance::text AS balance, status FROM accounts WHERE id LIKE 'demo-%' ORDER BY id`,
    );
    expect(rows.filter((row) => !row.id.startsWith('demo-load-'))).toEqual([
      { id: 'demo-alice', balance: '874.50', status: 'open' },
      { id: 'demo-bob', balance: '375.50', status: 'open' },
    ]);
    const seeded = await query<{ transfer_id: string; status: string }>(
      url!,
      `SELECT transfer_id, status FROM transactions WHERE transfer_id LIKE 'demo-seed-%' ORDER BY transfer_id`,
    );
    expect(seeded).toEqual(
      ['demo-seed-1', 'demo-seed-2', 'demo-seed-3'].map((id) => ({ transfer_id: id, status: 'COMPLETED' })),
    );

    expect((await readFile(path.join(home, 'cluster-secret'), 'utf8')).trim().length).toBeGreaterThanOrEqual(32);
    // The API (in every build that has src/http/server.ts): the balance with the printed token.
    const apiUrl = /^ {2}API +(http:\/\/\S+)/m.exec(output)![1]!;
    expect(apiUrl).toBe(`http://127.0.0.1:${httpPort}`);
    if (existsSync(fileURLToPath(new URL('../../../src/http/server.ts', import.meta.url)))) {
      expect(output).not.toContain('(not answering on /healthz)');
      const token = /^ {2}token +([A-Za-z0-9._-]+)$/m.exec(output)?.[1];
      expect(token, 'a token must be printed').toBeDefined();
      const response = await fetch(`${apiUrl}/v1/accounts/demo-alice`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ accountId: 'demo-alice', balance: '874.50', currency: 'EUR' });
      expect((await fetch(`${apiUrl}/v1/accounts/demo-alice`)).status).toBe(401);
    }

    // The load keeps running: more transfers reach PostgreSQL while we watch.
    const count = async () =>
      Number(
        (
          await query<{ n: string }>(
            url!,
            `SELECT count(*) AS n FROM transactions WHERE transfer_id NOT LIKE 'demo-seed-%'`,
          )
        )[0]!.n,
      );
    const before = await count();
    const loadDeadline = Date.now() + 15_000;
    while ((await count()) <= before && Date.now() < loadDeadline)
      await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await count()).toBeGreaterThan(before);

    const postgresPid = Number((await readFile(path.join(dataDir!, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    const postgresPort = Number(new URL(url!).port);
    expect(alive(postgresPid)).toBe(true);

    dev.child.kill('SIGINT');
    const exit = await Promise.race([
      dev.exited,
      new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS)),
    ]);
    expect(exit, dev.output()).toEqual({ code: 0, signal: null });
    expect(dev.output()).toMatch(/stopping the embedded PostgreSQL/);
    expect(dev.output()).toMatch(/bankstream dev: stopped$/m);

    expect(alive(postgresPid)).toBe(false);
    expect(await portOpen(postgresPort)).toBe(false);
    expect(await portOpen(httpPort)).toBe(false);
    // The broker was running before: dev used it and left it alone.
    expect(dev.output()).toMatch(/Kafka answers on .*; using it \(left running on exit\)/);
    expect(await brokersAnswer(TEST_BROKERS)).toBe(true);
  });

  it('should start the local broker when none answers, use the reachable DATABASE_URL and stop only the broker it started', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'bankstream-dev-'));
    await chmod(home, 0o755);
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const databaseUrl = uniqueDatabaseUrl('dev');
    cleanups.push(() => dropDatabase(databaseUrl));
    const kafkaPort = await freePortPair();
    const env = prefixedEnv(uniquePrefix('devk'), {
      KAFKA_BROKERS: `127.0.0.1:${kafkaPort}`,
      // scripts/kafka.sh: broker data in the test's folder, a small heap next to the shared broker.
      KAFKA_DATA_DIR: path.join(home, 'kafka'),
      KAFKA_HEAP: '512m',
      PARTITIONS: '2',
      HTTP_PORT: String(await freePort()),
      DATABASE_URL: databaseUrl,
      STATE_DIR: '',
      // As a newcomer runs it: no cluster secret, so `dev` generates one and keeps it in its folder.
      CLUSTER_SECRET: '',
    });
    cleanups.push(async () => {
      // Only if the test failed half-way: stop the broker it left.
      const stop = spawn('bash', [fileURLToPath(new URL('../../../scripts/kafka.sh', import.meta.url)), 'stop'], {
        env: { ...process.env, ...env, KAFKA_PORT: String(kafkaPort) },
        stdio: 'ignore',
      });
      await new Promise((resolve) => stop.once('exit', resolve));
      await rm(path.join(os.homedir(), '.bankstream', 'kafka-data', String(kafkaPort)), {
        recursive: true,
        force: true,
      });
    });

    const dev = runCli(['dev', '--home', home, '--no-load', '--ready-timeout', '80'], env);
    cleanups.push(async () => {
      if (dev.child.exitCode === null && dev.child.signalCode === null) dev.child.kill('SIGKILL');
    });
    await waitForLine(dev, /^bankstream dev is ready$/m, 85_000);
    const output = dev.output();
    expect(output).toMatch(
      new RegExp(`no Kafka broker answers on 127\\.0\\.0\\.1:${kafkaPort}; starting the local one`),
    );
    expect(output).toMatch(
      new RegExp(`^ {2}Kafka +127\\.0\\.0\\.1:${kafkaPort} \\(started here, stopped on exit\\)$`, 'm'),
    );
    expect(output).toMatch(/PostgreSQL answers at .*; using it/);
    expect(output).not.toMatch(/embedded/);
    const secretFile = path.join(home, 'cluster-secret');
    expect(output).toContain(`CLUSTER_SECRET generated once, kept in ${secretFile} (mode 600)`);
    expect((await stat(secretFile)).mode & 0o777).toBe(0o600);
    expect((await readFile(secretFile, 'utf8')).trim().length).toBeGreaterThanOrEqual(32);
    expect(output).toMatch(/^WARNING: this broker has no ACLs and no authentication \(PLAINTEXT\)/m);
    expect(await brokersAnswer([`127.0.0.1:${kafkaPort}`])).toBe(true);
    const rows = await query<{ id: string; balance: string }>(
      databaseUrl,
      `SELECT id, balance::text AS balance FROM accounts ORDER BY id`,
    );
    expect(rows).toEqual([
      { id: 'demo-alice', balance: '874.50' },
      { id: 'demo-bob', balance: '375.50' },
    ]);

    dev.child.kill('SIGINT');
    const exit = await Promise.race([
      dev.exited,
      new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 45_000)),
    ]);
    expect(exit, dev.output()).toEqual({ code: 0, signal: null });
    expect(dev.output()).toMatch(/stopping the local Kafka broker/);
    expect(await portOpen(kafkaPort)).toBe(false);
    // The database server was running before and is left alone.
    expect(await query<{ one: number }>(databaseUrl, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });
});
