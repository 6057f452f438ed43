import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { query, uniqueDatabaseUrl } from '../support/postgres.ts';
import { type Expected, buildScenario, cents, createTestProducer, endOffsets } from './fixtures.ts';
import { type Setup, onCleanup, setUp, startSink, waitFor } from './support.ts';

const TEST_TIMEOUT_MS = 120_000;
const BIN = path.resolve(import.meta.dirname, '../../../bin/bankstream');

/** True when sink_offsets reached the end of every non-empty partition. */
async function caughtUp(setup: Setup): Promise<boolean> {
  const ends = await endOffsets([setup.topics.completed, setup.topics.failed, setup.topics.audit]);
  const rows = await query<{ topic: string; partition: number; next_offset: string }>(
    setup.config.databaseUrl,
    'SELECT topic, partition, next_offset FROM sink_offsets WHERE group_id = $1',
    [setup.config.sinkGroupId],
  );
  const stored = new Map(rows.map((row) => [`${row.topic}:${row.partition}`, BigInt(row.next_offset)]));
  return [...ends].every(([key, end]) => end === 0n || stored.get(key) === end);
}

function merge(a: Expected, b: Expected): Expected {
  return {
    balances: new Map([...a.balances, ...b.balances]),
    statuses: new Map([...a.statuses, ...b.statuses]),
    conflicts: a.conflicts + b.conflicts,
    audits: a.audits + b.audits,
    rejects: a.rejects + b.rejects,
    closed: [...a.closed, ...b.closed],
  };
}

/** Every committed record once, no aborted one, the right balances. */
async function expectReadModel(databaseUrl: string, expected: Expected): Promise<void> {
  const transactions = await query<{ transfer_id: string; status: string }>(
    databaseUrl,
    'SELECT transfer_id, status FROM transactions',
  );
  expect(new Map(transactions.map((row) => [row.transfer_id, row.status]))).toEqual(expected.statuses);
  expect(transactions.length).toBe(expected.statuses.size);
  const accounts = await query<{ id: string; balance: string; status: string; owner_id: string | null }>(
    databaseUrl,
    'SELECT id, balance::text, status, owner_id FROM accounts',
  );
  const balances = new Map(accounts.map((row) => [row.id, row.balance]));
  expect(balances).toEqual(new Map([...expected.balances].map(([id, value]) => [id, cents(value)])));
  for (const account of accounts) {
    expect(account.owner_id).toBe(`owner-${account.id}`);
    expect(account.status).toBe(expected.closed.includes(account.id) ? 'closed' : 'open');
  }
  const counts = await query<{ conflicts: string; audits: string; rejects: string; aborted: string }>(
    databaseUrl,
    `SELECT
      (SELECT count(*) FROM transfer_conflicts) AS conflicts, (SELECT count(*) FROM audit_logs) AS audits,
      (SELECT count(*) FROM sink_rejects) AS rejects,
      (SELECT count(*) FROM audit_logs WHERE account_id LIKE 'aborted%') AS aborted`,
  );
  expect(counts[0]).toEqual({
    conflicts: String(expected.conflicts),
    audits: String(expected.audits),
    rejects: String(expected.rejects),
    aborted: '0',
  });
}

describe('PostgresSink', () => {
  it(
    'should write every committed record exactly once and none of the aborted ones when it reads a few hundred records',
    async () => {
      const setup = await setUp('sinkonce');
      const scenario = buildScenario(setup.topics, 300);
      const producer = await createTestProducer(`${setup.config.appId}-producer`, setup.topics);
      onCleanup(() => producer.close());
      await producer.produce(scenario.committed);

      const sink = startSink(setup.config);
      await sink.start();
      await waitFor('the sink to catch up', () => caughtUp(setup));

      await expectReadModel(setup.config.databaseUrl, scenario.expected);
      const malformed = await query<{ amount: string | null; currency: string | null; failure_code: string }>(
        setup.config.databaseUrl,
        `SELECT amount, currency, failure_code FROM transactions WHERE transfer_id = 't-malformed'`,
      );
      expect(malformed).toEqual([{ amount: null, currency: 'EUR', failure_code: 'malformed' }]);
      const reference = await query<{ reference: string }>(
        setup.config.databaseUrl,
        `SELECT reference FROM transactions WHERE reference IS NOT NULL LIMIT 1`,
      );
      expect(reference[0]?.reference).toMatch(/^ref \d+\twith\\tab$/);
      expect(sink.status()).toMatchObject({ state: 'running', lastError: null, rejectsWritten: 1 });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should still hold each record once when the sink is stopped with a pending batch, restarted and replays from a rewound offset',
    async () => {
      const setup = await setUp('sinkrestart', { SINK_BATCH_MS: '4000', SINK_BATCH_ROWS_MAX: '50' });
      const first = buildScenario(setup.topics, 200, 6, 1, 'p1');
      const second = buildScenario(setup.topics, 200, 6, 2, 'p2');
      const producer = await createTestProducer(`${setup.config.appId}-producer`, setup.topics);
      onCleanup(() => producer.close());
      await producer.produce(first.committed);

      const before = startSink(setup.config);
      await before.start();
      await waitFor('a few full batches', () => before.status().batchesWritten >= 2);
      // Like a crash as far as data goes: the batch still waiting for its 4 s deadline is dropped.
      await before.stop({ flushPending: false });
      expect(await caughtUp(setup)).toBe(false);
      await producer.produce(second.committed);
      // A replay: everything of one partition is read and offered to Postgres a second time.
      await query(
        setup.config.databaseUrl,
        `UPDATE sink_offsets SET next_offset = 0 WHERE topic = $1 AND partition = 0`,
        [setup.topics.completed],
      );

      const after = startSink(setup.config);
      await after.start();
      await waitFor('the restarted sink to catch up', () => caughtUp(setup));

      await expectReadModel(setup.config.databaseUrl, merge(first.expected, second.expected));
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should seek to the offsets in Postgres and write each record once when partitions move between two sinks',
    async () => {
      const setup = await setUp('sinkrebalance');
      const phases = [1, 2, 3].map((n) => buildScenario(setup.topics, 120, 4, 10 + n, `r${n}`));
      const producer = await createTestProducer(`${setup.config.appId}-producer`, setup.topics);
      onCleanup(() => producer.close());
      await producer.produce(phases[0]?.committed ?? []);
      const a = startSink(setup.config);
      await a.start();
      await waitFor('the first sink to catch up', () => caughtUp(setup));

      const b = startSink(setup.config);
      await b.start();
      await waitFor(
        'the partitions to be shared',
        () =>
          a.status().assignedPartitions > 0 &&
          b.status().assignedPartitions > 0 &&
          a.status().assignedPartitions + b.status().assignedPartitions === 9,
      );
      await producer.produce(phases[1]?.committed ?? []);
      await waitFor('both sinks to catch up', () => caughtUp(setup));
      await a.stop();
      await producer.produce(phases[2]?.committed ?? []);
      await waitFor('the remaining sink to take everything over', () => b.status().assignedPartitions === 9);
      await waitFor('the remaining sink to catch up', () => caughtUp(setup));

      await expectReadModel(setup.config.databaseUrl, phases.map((p) => p.expected).reduce(merge));
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should pause while Postgres is unreachable and resume by itself when it is back',
    async () => {
      const proxy = await startTcpProxy(5432);
      onCleanup(() => proxy.close());
      const direct = uniqueDatabaseUrl('sinkdown');
      const viaProxy = new URL(direct);
      viaProxy.port = String(proxy.port);
      const setup = await setUp('sinkdown', { DATABASE_URL: viaProxy.toString() });
      const first = buildScenario(setup.topics, 100, 5, 3, 'd1');
      const second = buildScenario(setup.topics, 100, 5, 4, 'd2');
      const producer = await createTestProducer(`${setup.config.appId}-producer`, setup.topics);
      onCleanup(() => producer.close());
      await producer.produce(first.committed);
      const sink = startSink(setup.config);
      await sink.start();
      await waitFor('the first records', () => caughtUp(setup));

      await proxy.down();
      await producer.produce(second.committed);
      await waitFor('the sink to notice', () => sink.status().state === 'paused-db-down');
      await waitFor('a few retries', () => sink.status().consecutiveFailures >= 3);
      expect(sink.status().lastError).toMatch(/ECONNREFUSED|terminated/);
      await proxy.up();
      await waitFor('the sink to catch up after the outage', () => caughtUp(setup));

      expect(sink.status().state).toBe('running');
      await expectReadModel(setup.config.databaseUrl, merge(first.expected, second.expected));
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should hold each record once when the sink process is killed mid-way and started again',
    async () => {
      const setup = await setUp('sinkkill', { SINK_BATCH_ROWS_MAX: '5', SINK_BATCH_MS: '20', LOG_LEVEL: 'error' });
      const scenario = buildScenario(setup.topics, 1500, 10, 5, 'k');
      const producer = await createTestProducer(`${setup.config.appId}-producer`, setup.topics);
      onCleanup(() => producer.close());
      await producer.produce(scenario.committed, { perTransaction: 100, abortEvery: 4 });

      const first = runSinkProcess(setup.env);
      onCleanup(async () => void (await stopProcess(first, 'SIGKILL')));
      await waitFor(
        'some progress',
        async () =>
          Number(
            (await query<{ n: string }>(setup.config.databaseUrl, 'SELECT count(*) AS n FROM transactions'))[0]?.n,
          ) > 50,
      );
      await stopProcess(first, 'SIGKILL');
      expect(await caughtUp(setup)).toBe(false);
      const second = runSinkProcess(setup.env);
      onCleanup(async () => void (await stopProcess(second, 'SIGKILL')));
      await waitFor('the restarted process to catch up', () => caughtUp(setup), 90_000);
      const exit = await stopProcess(second, 'SIGTERM');

      expect(exit).toEqual({ code: 0, signal: null });
      await expectReadModel(setup.config.databaseUrl, scenario.expected);
    },
    TEST_TIMEOUT_MS,
  );
});

function runSinkProcess(env: Record<string, string>): ChildProcess {
  const child = spawn(BIN, ['sink'], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  return child;
}

async function stopProcess(
  child: ChildProcess,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, exitSignal) => resolve({ code, signal: exitSignal })),
  );
  child.kill(signal);
  return exited;
}

interface TcpProxy {
  port: number;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

/** A TCP proxy to a local port that can drop every connection and refuse new ones, then come back. */
async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = net.createServer((socket) => {
        const upstream = net.connect(targetPort, '127.0.0.1');
        for (const s of [socket, upstream]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => undefined);
        }
        socket.pipe(upstream).pipe(socket);
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as net.AddressInfo).port;
        resolve();
      });
    });
  const down = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      if (server) server.close(() => resolve());
      else resolve();
      server = null;
    });
  await listen();
  return { port, down, up: listen, close: down };
}
