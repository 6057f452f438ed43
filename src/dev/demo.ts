// The demo data of `bankstream dev`: a few accounts with known balances, seeded with fixed
// transferIds (a second run is deduplicated by the processor, so balances stay as printed), and a
// light, continuous load (src/load) on separate accounts so that the dashboard and the sink have
// traffic. Seed commands use the public wire format (src/bank/README-BANK.md) and are keyed by the
// account they act on; the producer partitions keys as the Java client does (src/kafka/partitioner.ts).
import pg from 'pg';
import type { Config } from '../config/config.ts';
import { createIdempotentProducer } from '../kafka/clients.ts';
import { kafkaConnectionOptions } from '../kafka/security.ts';
import { pgConnectionConfig } from '../sinks/pg-connection.ts';
import { createUser, type Role } from '../http/users.ts';
import type { BankstreamProducer } from '../kafka/producer.ts';
import { runLoad } from '../load/index.ts';
import { DevAbortedError, type DevReporter } from './process.ts';

export interface DemoCommand {
  key: string;
  value: Record<string, string>;
}

export interface DemoAccount {
  accountId: string;
  ownerId: string;
  currency: string;
  /** Balance once the seed is applied, as the API and Postgres print it. */
  expectedBalance: string;
}

/** The accounts a newcomer reads first; their balances never change after the seed. */
export const DEMO_ACCOUNTS: readonly DemoAccount[] = [
  { accountId: 'demo-alice', ownerId: 'alice', currency: 'EUR', expectedBalance: '874.50' },
  { accountId: 'demo-bob', ownerId: 'bob', currency: 'EUR', expectedBalance: '375.50' },
];

/** API users of the demo (the `users` table): one per role, and the owners of the demo accounts. */
export const DEMO_USERS: ReadonlyArray<{ id: string; role: Role; name: string }> = [
  { id: 'admin', role: 'admin', name: 'Demo Admin' },
  { id: 'teller', role: 'teller', name: 'Demo Teller' },
  { id: 'alice', role: 'customer', name: 'Alice Demo' },
  { id: 'bob', role: 'customer', name: 'Bob Demo' },
];
/** Every demo user's password: a local stack only, never a deployed one (its API runs in dev auth mode). */
export const DEMO_PASSWORD = 'bankstream-dev';

function devClient(config: Config): pg.Client {
  const client = new pg.Client({
    ...pgConnectionConfig(config.databaseUrl, config.postgresTls),
    application_name: 'bankstream-dev',
  });
  client.on('error', () => undefined);
  return client;
}

/** Creates or refreshes the demo users (same ids, roles and password on every run). */
export async function seedUsers(config: Config): Promise<void> {
  const client = devClient(config);
  await client.connect();
  try {
    for (const user of DEMO_USERS) await createUser(client, { ...user, password: DEMO_PASSWORD }, { replace: true });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Accounts of the light load: its transfers stay among them. */
export const LOAD_ACCOUNT_PREFIX = 'demo-load';
export const LOAD_ACCOUNTS = 6;
const LOAD_FUNDING = '500.00';

/** Opens the demo accounts, funds them and moves money once: alice 874.50, bob 375.50. */
export function seedCommands(): DemoCommand[] {
  const [alice, bob] = DEMO_ACCOUNTS as [DemoAccount, DemoAccount];
  return [
    {
      key: alice.accountId,
      value: {
        type: 'open_account',
        accountId: alice.accountId,
        ownerId: alice.ownerId,
        currency: 'EUR',
        overdraftLimit: '0.00',
      },
    },
    {
      key: bob.accountId,
      value: {
        type: 'open_account',
        accountId: bob.accountId,
        ownerId: bob.ownerId,
        currency: 'EUR',
        overdraftLimit: '100.00',
      },
    },
    {
      key: alice.accountId,
      value: {
        type: 'deposit',
        transferId: 'demo-seed-1',
        accountId: alice.accountId,
        amount: '1000.00',
        currency: 'EUR',
      },
    },
    {
      key: bob.accountId,
      value: {
        type: 'deposit',
        transferId: 'demo-seed-2',
        accountId: bob.accountId,
        amount: '250.00',
        currency: 'EUR',
      },
    },
    {
      key: alice.accountId,
      value: {
        type: 'transfer',
        transferId: 'demo-seed-3',
        from: alice.accountId,
        to: bob.accountId,
        amount: '125.50',
        currency: 'EUR',
        reference: 'welcome',
      },
    },
  ];
}

/** The transferIds whose outcomes prove the pipeline works end to end. */
export const SEED_TRANSFER_IDS: readonly string[] = ['demo-seed-1', 'demo-seed-2', 'demo-seed-3'];

export async function sendCommands(config: Config, commands: DemoCommand[]): Promise<void> {
  const producer = demoProducer(config, 'bankstream-dev-seed');
  try {
    await send(producer, config.topics.input, commands);
  } finally {
    await producer.close();
  }
}

function demoProducer(config: Config, clientId: string): BankstreamProducer {
  return createIdempotentProducer({
    bootstrapBrokers: config.kafkaBrokers,
    clientId,
    security: kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
    retries: 3,
    retryDelayMs: 250,
  });
}

async function send(producer: BankstreamProducer, topic: string, commands: DemoCommand[]): Promise<void> {
  // One request, in order: the open_account of a key lands before its deposits (same partition).
  await producer.send({
    messages: commands.map((command) => ({
      topic,
      key: Buffer.from(command.key),
      value: Buffer.from(JSON.stringify(command.value)),
    })),
  });
}

export interface SeedState {
  balances: Map<string, string>;
}

/**
 * Waits until the sink has written the seed's outcomes to Postgres (the whole pipeline works) and
 * returns the demo balances as Postgres holds them. Polls every 250 ms, up to `timeoutMs`.
 */
export async function waitForSeed(config: Config, timeoutMs: number, signal: AbortSignal): Promise<SeedState> {
  const client = devClient(config);
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    const accounts = DEMO_ACCOUNTS.map((account) => account.accountId);
    for (;;) {
      const done = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM transactions WHERE transfer_id = ANY($1) AND status = 'COMPLETED'`,
        [SEED_TRANSFER_IDS],
      );
      const rows = await client.query<{ id: string; balance: string }>(
        `SELECT id, balance::text AS balance FROM accounts WHERE id = ANY($1) AND opened_at IS NOT NULL`,
        [accounts],
      );
      if (Number(done.rows[0]?.n) === SEED_TRANSFER_IDS.length && rows.rows.length === accounts.length) {
        return { balances: new Map(rows.rows.map((row) => [row.id, row.balance])) };
      }
      if (signal.aborted) throw new DevAbortedError();
      if (Date.now() >= deadline) {
        throw new Error(
          `the demo transfers did not reach PostgreSQL within ${timeoutMs / 1000} s (${done.rows[0]?.n ?? 0} of ${SEED_TRANSFER_IDS.length} completed, ${rows.rows.length} of ${accounts.length} accounts)`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Light load

export interface LightLoad {
  /** Stops sending and waits for what is in flight. */
  stop(): Promise<void>;
}

/** Longest run the load generator accepts (LOAD_LIMITS.durationMsMax); Ctrl-C ends it sooner. */
const LOAD_DURATION_MS = 24 * 3600 * 1000;

/**
 * Starts the light load with the project's load generator: its own accounts (demo-load-0..5, funded
 * with 500.00 each), `ratePerSecond` transfers a second, 5 % deliberately invalid ones so that the
 * failure and DLQ panels show something. Bounded (24 h) and ended by stop().
 */
export function startLightLoad(config: Config, ratePerSecond: number, reporter: DevReporter): LightLoad {
  const abort = new AbortController();
  const run = runLoad({
    brokers: config.kafkaBrokers,
    topic: config.topics.input,
    accounts: LOAD_ACCOUNTS,
    accountPrefix: LOAD_ACCOUNT_PREFIX,
    fundingAmount: LOAD_FUNDING,
    ratePerSecond,
    durationMs: LOAD_DURATION_MS,
    invalidRatio: 0.05,
    runId: `demo-${Date.now().toString(36)}`,
    signal: abort.signal,
    clientId: 'bankstream-dev-load',
  }).then(
    () => undefined,
    (error: unknown) => reporter.note(`the demo load stopped: ${(error as Error).message}`),
  );
  let stopped: Promise<void> | undefined;
  return {
    stop: () =>
      (stopped ??= (async () => {
        abort.abort();
        await run;
      })()),
  };
}
