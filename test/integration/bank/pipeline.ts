// Shared steps of the bank pipeline tests: topics, an independent KafkaJS upstream producer, and the checks
// of outcomes, DLQ and balances against the workload's expectations.
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { expect } from 'vitest';
import { type Config, loadConfig } from '../../../src/config/config.ts';
import { currencyDigits, formatMoney } from '../../../src/bank/money.ts';
import { ensureTopics } from '../../../src/ops/topics.ts';
import { readCommitted } from '../../helpers/kafka.ts';
import { prefixedEnv, uniquePrefix } from '../support/kafka.ts';
import { type Workload, type WorkloadCommand } from './workload.ts';

export const PARTITIONS = 4;

export async function setupPipeline(label: string, stateDir: string): Promise<{ prefix: string; env: Record<string, string>; config: Config }> {
  const prefix = uniquePrefix(label);
  const env = prefixedEnv(prefix, { PARTITIONS: String(PARTITIONS), STATE_DIR: stateDir, INSTANCE_ID: 'i0', HTTP_PORT: '0', COMMIT_INTERVAL_MS: '100' });
  const config = loadConfig(env);
  await ensureTopics(config);
  return { prefix, env, config };
}

/** Sends commands in order with KafkaJS and its default (Java-compatible murmur2) partitioner. */
export async function sendWithKafkaJs(config: Config, commands: WorkloadCommand[]): Promise<void> {
  const kafka = new Kafka({ clientId: 'upstream', brokers: config.kafkaBrokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    for (let i = 0; i < commands.length; i += 500) {
      const messages = commands.slice(i, i + 500).map((c) => ({ key: c.key, value: c.value, ...(c.partition === undefined ? {} : { partition: c.partition }) }));
      await producer.send({ topic: config.topics.input, messages, acks: -1 });
    }
  } finally {
    await producer.disconnect();
  }
}

export interface Observed {
  completed: Array<Record<string, string>>;
  failed: Array<Record<string, string>>;
  dlq: Array<{ value: string; headers: Record<string, string> }>;
  balances: Map<string, { balance: string; inFlight: string }>;
}

export async function observe(config: Config): Promise<Observed> {
  const parse = (b: Buffer | null) => JSON.parse(b!.toString('utf8')) as Record<string, string>;
  const completed = (await readCommitted(config.topics.completed, PARTITIONS)).map((r) => parse(r.value));
  const failed = (await readCommitted(config.topics.failed, PARTITIONS)).map((r) => parse(r.value));
  const dlq = (await readCommitted(config.topics.dlq, PARTITIONS)).map((r) => ({
    value: r.value?.toString('utf8') ?? '',
    headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, v.toString('utf8')])),
  }));
  const balances = new Map<string, { balance: string; inFlight: string }>();
  for (const r of await readCommitted(`${config.appId}-balances-changelog`, PARTITIONS)) {
    if (r.key && r.value) balances.set(r.key.toString('utf8'), JSON.parse(r.value.toString('utf8')) as { balance: string; inFlight: string });
  }
  return { completed, failed, dlq, balances };
}

/** Counts every outcome the workload is owed: deposits, decided transfers and conflicts. */
export function expectedOutcomeCount(workload: Workload): number {
  return [...workload.setup, ...workload.commands].filter((c) => c.expect.kind === 'outcome' || c.expect.kind === 'conflict').length;
}

/** Every expectation of the workload holds, and the money adds up account by account. */
export function checkPipeline(workload: Workload, seen: Observed): void {
  const all = [...workload.setup, ...workload.commands];
  const decided = new Map<string, Record<string, string>>();
  for (const o of seen.completed) {
    expect(decided.has(o.transferId!), `second outcome for ${o.transferId}`).toBe(false);
    decided.set(o.transferId!, { ...o, code: 'completed' });
  }
  const conflicts = new Map<string, number>();
  for (const o of seen.failed) {
    if (o.code === 'idempotency_conflict') {
      conflicts.set(o.transferId!, (conflicts.get(o.transferId!) ?? 0) + 1);
      continue;
    }
    expect(decided.has(o.transferId!), `second outcome for ${o.transferId}`).toBe(false);
    decided.set(o.transferId!, o);
  }
  const wantConflicts = new Map<string, number>();
  let outcomes = 0;
  for (const c of all) {
    if (c.expect.kind === 'outcome') {
      outcomes++;
      expect(c.expect.codes, `outcome of ${c.expect.transferId}`).toContain(decided.get(c.expect.transferId)?.code);
    }
    if (c.expect.kind === 'conflict') wantConflicts.set(c.expect.transferId, (wantConflicts.get(c.expect.transferId) ?? 0) + 1);
  }
  expect(decided.size).toBe(outcomes);
  expect(Object.fromEntries(conflicts)).toEqual(Object.fromEntries(wantConflicts));
  const markers = all.filter((c) => c.expect.kind === 'dlq').map((c) => (c.expect as { marker: string }).marker).sort();
  const markerOf = (value: string) => markers.find((m) => value.endsWith(m) || value.includes(`${m}"`)) ?? value;
  expect(seen.dlq.map((d) => markerOf(d.value)).sort()).toEqual(markers);
  for (const d of seen.dlq) expect(d.headers['bankstream.error']).toBeTruthy();
  checkBalances(workload, decided, seen.balances);
}

function checkBalances(workload: Workload, decided: Map<string, Record<string, string>>, balances: Observed['balances']): void {
  const cents = (amount: string) => BigInt(amount.replace('.', ''));
  const expected = new Map<string, bigint>(workload.accounts.map((a) => [a, 0n]));
  let deposits = 0n;
  for (const o of decided.values()) {
    if (o.code !== 'completed') continue;
    const amount = cents(o.amount!);
    if (o.type === 'deposit') {
      expected.set(o.accountId!, expected.get(o.accountId!)! + amount);
      deposits += amount;
    }
    if (o.type === 'transfer') {
      expected.set(o.from!, expected.get(o.from!)! - amount);
      expected.set(o.to!, expected.get(o.to!)! + amount);
    }
  }
  let total = 0n;
  for (const account of workload.accounts) {
    const row = balances.get(account) ?? { balance: '0', inFlight: '0' };
    expect(formatMoney(BigInt(row.balance), currencyDigits('EUR')!), account).toBe(formatMoney(expected.get(account)!, 2));
    expect(row.inFlight, `${account} in flight`).toBe('0');
    expect(BigInt(row.balance) >= 0n, `${account} overdrawn`).toBe(true);
    total += BigInt(row.balance);
  }
  // The invariant: money is only moved, never created or destroyed.
  expect(total).toBe(deposits);
}
