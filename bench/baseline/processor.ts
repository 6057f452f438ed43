// The baseline: the per-message design the project started from, written plainly so the benchmark
// compares against it side by side. KafkaJS `eachMessage` (one message at a time, auto-committed
// offsets: at-least-once), one PostgreSQL transaction per command that SELECTs the balances and then
// UPDATEs them, and one produce request per outcome. Same commands, same outcome shape.
// It is a measuring stick, not a second implementation: no DLQ, no repartitioning, no exactly-once.
import { Kafka, logLevel, type Producer } from 'kafkajs';
import pg from 'pg';
import { currencyDigits, formatMoney, parseMoney } from '../../src/bank/money.ts';

export interface BaselineOptions {
  brokers: string[];
  inputTopic: string;
  completedTopic: string;
  failedTopic: string;
  databaseUrl: string;
  groupId: string;
}

export interface BaselineCounts {
  messages: number;
  completed: number;
  failed: number;
  skipped: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS baseline_accounts (
  id text PRIMARY KEY, owner_id text NOT NULL, currency char(3) NOT NULL,
  balance numeric NOT NULL DEFAULT 0, overdraft_limit numeric NOT NULL DEFAULT 0, status text NOT NULL DEFAULT 'open');
CREATE TABLE IF NOT EXISTS baseline_transactions (
  transfer_id text PRIMARY KEY, type text NOT NULL, account_id text, from_account text, to_account text,
  amount numeric, currency char(3), status text NOT NULL, failure_code text,
  requested_at timestamptz, completed_at timestamptz NOT NULL)`;

type Json = Record<string, unknown>;
type Outcome = { topic: 'completed' | 'failed'; value: Json };

interface Account {
  currency: string;
  balance: bigint;
  overdraftLimit: bigint;
  status: string;
}

/** Runs until `signal` aborts; returns what it processed. */
export async function runBaseline(options: BaselineOptions, signal: AbortSignal): Promise<BaselineCounts> {
  const db = new pg.Client({ connectionString: options.databaseUrl, application_name: 'bankstream-baseline' });
  await db.connect();
  await db.query(SCHEMA);
  const kafka = new Kafka({ clientId: 'bankstream-baseline', brokers: options.brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  const consumer = kafka.consumer({ groupId: options.groupId });
  const counts: BaselineCounts = { messages: 0, completed: 0, failed: 0, skipped: 0 };
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic: options.inputTopic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      counts.messages++;
      const outcome = await handle(db, message.value, message.timestamp);
      if (!outcome) {
        counts.skipped++;
        return;
      }
      counts[outcome.topic]++;
      await send(producer, outcome.topic === 'completed' ? options.completedTopic : options.failedTopic, outcome.value);
    },
  });
  await new Promise<void>((resolve) =>
    signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true }),
  );
  await consumer.disconnect();
  await producer.disconnect();
  await db.end();
  return counts;
}

async function send(producer: Producer, topic: string, value: Json): Promise<void> {
  await producer.send({
    topic,
    acks: -1,
    messages: [{ key: value['transferId'] as string, value: JSON.stringify(value) }],
  });
}

async function handle(db: pg.Client, bytes: Buffer | null, timestamp: string): Promise<Outcome | undefined> {
  let command: Json;
  try {
    command = JSON.parse(bytes?.toString('utf8') ?? 'null') as Json;
  } catch {
    return undefined;
  }
  if (typeof command !== 'object' || command === null) return undefined;
  const requestedAt =
    typeof command['requestedAt'] === 'string' ? command['requestedAt'] : new Date(Number(timestamp)).toISOString();
  switch (command['type']) {
    case 'open_account':
      await db.query(
        'INSERT INTO baseline_accounts (id, owner_id, currency, overdraft_limit) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
        [command['accountId'], command['ownerId'], command['currency'], command['overdraftLimit'] ?? '0'],
      );
      return undefined;
    case 'deposit':
      return inTransaction(db, () => deposit(db, command, requestedAt));
    case 'transfer':
      return inTransaction(db, () => transfer(db, command, requestedAt));
    default:
      return undefined;
  }
}

async function inTransaction(db: pg.Client, work: () => Promise<Outcome>): Promise<Outcome> {
  await db.query('BEGIN');
  try {
    const outcome = await work();
    await db.query('COMMIT');
    return outcome;
  } catch (error) {
    await db.query('ROLLBACK');
    throw error;
  }
}

async function deposit(db: pg.Client, c: Json, requestedAt: string): Promise<Outcome> {
  const fields = {
    transferId: c['transferId'],
    type: 'deposit',
    accountId: c['accountId'],
    amount: c['amount'],
    currency: c['currency'],
    requestedAt,
  };
  if (await alreadyDecided(db, c['transferId'])) return fail(db, fields, 'idempotency_conflict', false);
  const account = await selectAccount(db, c['accountId']);
  const amount = amountOf(c);
  if (amount === undefined) return fail(db, fields, 'invalid_amount');
  if (!account) return fail(db, fields, 'account_not_found');
  await updateBalance(db, c['accountId'], account.balance + amount, account.currency);
  return complete(db, fields);
}

/** SELECT both accounts FOR UPDATE, check, then UPDATE both balances: the seed's read-modify-write. */
async function transfer(db: pg.Client, c: Json, requestedAt: string): Promise<Outcome> {
  const fields = {
    transferId: c['transferId'],
    type: 'transfer',
    from: c['from'],
    to: c['to'],
    amount: c['amount'],
    currency: c['currency'],
    requestedAt,
  };
  if (await alreadyDecided(db, c['transferId'])) return fail(db, fields, 'idempotency_conflict', false);
  const amount = amountOf(c);
  if (amount === undefined) return fail(db, fields, 'invalid_amount');
  if (c['from'] === c['to']) return fail(db, fields, 'same_account');
  const from = await selectAccount(db, c['from']);
  const to = await selectAccount(db, c['to']);
  if (!from || !to) return fail(db, fields, 'account_not_found');
  if (from.currency !== c['currency'] || to.currency !== c['currency']) return fail(db, fields, 'currency_mismatch');
  if (from.balance - amount < -from.overdraftLimit) return fail(db, fields, 'insufficient_funds');
  await updateBalance(db, c['from'], from.balance - amount, from.currency);
  await updateBalance(db, c['to'], to.balance + amount, to.currency);
  return complete(db, fields);
}

async function alreadyDecided(db: pg.Client, transferId: unknown): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM baseline_transactions WHERE transfer_id = $1', [transferId]);
  return (rowCount ?? 0) > 0;
}

async function selectAccount(db: pg.Client, id: unknown): Promise<Account | undefined> {
  const { rows } = await db.query<{ currency: string; balance: string; overdraft_limit: string; status: string }>(
    'SELECT currency, balance::text, overdraft_limit::text, status FROM baseline_accounts WHERE id = $1 FOR UPDATE',
    [id],
  );
  const row = rows[0];
  if (!row) return undefined;
  const digits = currencyDigits(row.currency) ?? 2;
  return {
    currency: row.currency,
    balance: numericToMinor(row.balance, digits),
    overdraftLimit: numericToMinor(row.overdraft_limit, digits),
    status: row.status,
  };
}

async function updateBalance(db: pg.Client, id: unknown, balance: bigint, currency: string): Promise<void> {
  await db.query('UPDATE baseline_accounts SET balance = $2 WHERE id = $1', [
    id,
    formatMoney(balance, currencyDigits(currency) ?? 2),
  ]);
}

async function complete(db: pg.Client, fields: Json): Promise<Outcome> {
  const value = { ...fields, completedAt: new Date().toISOString() };
  await insertTransaction(db, value, 'COMPLETED', null);
  return { topic: 'completed', value };
}

async function fail(db: pg.Client, fields: Json, code: string, record = true): Promise<Outcome> {
  const value = { ...fields, completedAt: new Date().toISOString(), code, reason: code.replaceAll('_', ' ') };
  if (record) await insertTransaction(db, value, 'FAILED', code);
  return { topic: 'failed', value };
}

async function insertTransaction(db: pg.Client, v: Json, status: string, code: string | null): Promise<void> {
  const amount = typeof v['amount'] === 'string' && /^-?[0-9]+(\.[0-9]+)?$/.test(v['amount']) ? v['amount'] : null;
  const currency = typeof v['currency'] === 'string' && /^[A-Z]{3}$/.test(v['currency']) ? v['currency'] : null;
  await db.query(
    `INSERT INTO baseline_transactions (transfer_id, type, account_id, from_account, to_account, amount, currency, status, failure_code, requested_at, completed_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [
      v['transferId'],
      v['type'],
      v['accountId'] ?? null,
      v['from'] ?? null,
      v['to'] ?? null,
      amount,
      currency,
      status,
      code,
      v['requestedAt'],
      v['completedAt'],
    ],
  );
}

/** The command's amount in minor units when it is a valid positive decimal string in its currency. */
function amountOf(c: Json): bigint | undefined {
  const digits = typeof c['currency'] === 'string' ? currencyDigits(c['currency']) : undefined;
  if (digits === undefined || typeof c['amount'] !== 'string') return undefined;
  const parsed = parseMoney(c['amount'], digits);
  return parsed.ok ? parsed.minor : undefined;
}

/** A NUMERIC read as text ("-12.5", "1000000.00") → minor units with `digits` decimals. */
function numericToMinor(text: string, digits: number): bigint {
  const negative = text.startsWith('-');
  const [whole = '0', fraction = ''] = (negative ? text.slice(1) : text).split('.');
  const minor = BigInt(whole) * 10n ** BigInt(digits) + BigInt((fraction + '0'.repeat(digits)).slice(0, digits) || '0');
  return negative ? -minor : minor;
}
