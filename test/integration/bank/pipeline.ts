// Shared steps of the bank pipeline tests: topics, an independent KafkaJS upstream producer, and the checks
// of outcomes, DLQ and balances against the workload's expectations.
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { expect } from 'vitest';
import { type Config, loadConfig } from '../../../src/config/config.ts';
import { currencyDigits, formatMoney } from '../../../src/bank/money.ts';
import { kafkaConnectionOptions } from '../../../src/kafka/security.ts';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { ensureTopics } from '../../../src/ops/topics.ts';
import { readCommitted } from '../../helpers/kafka.ts';
import { prefixedEnv, uniquePrefix } from '../support/kafka.ts';
import { holdViolations, overdueHolds } from './hold-checks.ts';
import type { Workload, WorkloadCommand } from './workload.ts';

export const PARTITIONS = 4;

export async function setupPipeline(
  label: string,
  stateDir: string,
): Promise<{ prefix: string; env: Record<string, string>; config: Config }> {
  const prefix = uniquePrefix(label);
  const env = prefixedEnv(prefix, {
    PARTITIONS: String(PARTITIONS),
    STATE_DIR: stateDir,
    INSTANCE_ID: 'i0',
    HTTP_PORT: '0',
    COMMIT_INTERVAL_MS: '100',
  });
  const config = loadConfig(env);
  await ensureTopics(config);
  return { prefix, env, config };
}

/** Sends commands in order with KafkaJS and its default (Java-compatible murmur2) partitioner. */
/**
 * The partition a command is sent to: its own when set, else the key's (KafkaJS's partitioner). A keyless
 * command goes to a partition picked from its bytes, so that a re-sent copy (sendReliably re-sends a whole
 * slice after a failed ack) lands where the first one did and is deduplicated there, as the bank documents
 * (README-BANK "Idempotency": a null key's entry lives on the partition it landed on). KafkaJS would pick
 * a random partition for each copy, and each copy would be answered.
 */
function partitionOf(command: WorkloadCommand, partitions: number): { partition?: number } {
  if (command.partition !== undefined) return { partition: command.partition };
  if (command.key === null) return { partition: partitionForKey(command.value, partitions) };
  return {};
}

export async function sendWithKafkaJs(config: Config, commands: WorkloadCommand[]): Promise<void> {
  const kafka = new Kafka({ clientId: 'upstream', brokers: config.kafkaBrokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  try {
    for (let i = 0; i < commands.length; i += 500) {
      const messages = commands
        .slice(i, i + 500)
        .map((c) => ({ key: c.key, value: c.value, ...partitionOf(c, config.partitions) }));
      await producer.send({ topic: config.topics.input, messages, acks: -1 });
    }
  } finally {
    await producer.disconnect();
  }
}

export interface BalanceSeen {
  balance: string;
  inFlight: string;
  pendingDebits?: string;
  pendingCredits?: string;
}

export interface Observed {
  completed: Array<Record<string, string>>;
  failed: Array<Record<string, string>>;
  dlq: Array<{ value: string; headers: Record<string, string> }>;
  balances: Map<string, BalanceSeen>;
  /** When the reading began: a hold's deadline is compared with this, not with the time of a check. */
  observedAtMs: number;
}

export async function observe(config: Config): Promise<Observed> {
  const observedAtMs = Date.now();
  const parse = (b: Buffer | null) => JSON.parse(b!.toString('utf8')) as Record<string, string>;
  // As the config's principal, over its TLS/SASL settings (plaintext when none).
  const security = kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers);
  const read = (topic: string) => readCommitted(topic, config.partitions, config.kafkaBrokers, security);
  const completed = (await read(config.topics.completed)).map((r) => parse(r.value));
  const failed = (await read(config.topics.failed)).map((r) => parse(r.value));
  const dlq = (await read(config.topics.dlq)).map((r) => ({
    value: r.value?.toString('utf8') ?? '',
    headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, v.toString('utf8')])),
  }));
  const balances = new Map<string, BalanceSeen>();
  for (const r of await read(`${config.appId}-balances-changelog`)) {
    if (r.key && r.value) balances.set(r.key.toString('utf8'), JSON.parse(r.value.toString('utf8')) as BalanceSeen);
  }
  return { completed, failed, dlq, balances, observedAtMs };
}

/** Counts every outcome the workload is owed: deposits, decided transfers and conflicts. */
export function expectedOutcomeCount(workload: Workload): number {
  return [...workload.setup, ...workload.commands].filter(
    (c) => c.expect.kind === 'outcome' || c.expect.kind === 'conflict',
  ).length;
}

/**
 * An open hold due within this long of a quiet check must expire first: the checks that follow read the
 * topics again, and an expiry landing between two reads (outcomes, then balances) would look like a
 * broken invariant. A workload's holds either expire within seconds or stay open for hours.
 */
export const HOLD_QUIET_HORIZON_MS = 60_000;

/**
 * The pipeline is quiet: every owed outcome is out, no money is in flight and no open hold is due
 * within HOLD_QUIET_HORIZON_MS (its expiry is still to come). A transfer's outcome is answered by the to
 * task before the settle leg reaches the from task, so counting outcomes alone races the last settle legs.
 */
export function quiet(seen: Observed, owed: number): boolean {
  return (
    seen.completed.length + seen.failed.length >= owed &&
    [...seen.balances.values()].every((b) => b.inFlight === '0') &&
    overdueHolds(seen.completed, seen.observedAtMs + HOLD_QUIET_HORIZON_MS) === 0
  );
}

/** Every expectation of the workload holds, and the money adds up account by account; returns violations. */
export function pipelineViolations(workload: Workload, seen: Observed): string[] {
  const problems: string[] = [];
  const all = [...workload.setup, ...workload.commands];
  const { decided, conflicts } = decidedOutcomes(seen, problems);
  const wantConflicts = new Map<string, number>();
  let outcomes = 0;
  const owed = new Set<string>();
  for (const c of all) {
    if (c.expect.kind === 'outcome' && !owed.has(c.expect.transferId)) {
      owed.add(c.expect.transferId);
      outcomes++;
      const code = decided.get(c.expect.transferId)?.code;
      if (!c.expect.codes.includes(code ?? 'none'))
        problems.push(`${c.expect.transferId}: outcome ${code ?? 'missing'}, expected ${c.expect.codes.join(' or ')}`);
    }
    if (c.expect.kind === 'conflict')
      wantConflicts.set(c.expect.transferId, (wantConflicts.get(c.expect.transferId) ?? 0) + 1);
  }
  if (decided.size !== outcomes) problems.push(`${decided.size} transfers decided, ${outcomes} expected`);
  for (const [id, n] of wantConflicts)
    if (conflicts.get(id) !== n) problems.push(`${id}: ${conflicts.get(id) ?? 0} idempotency conflicts, expected ${n}`);
  for (const [id, n] of conflicts)
    if (!wantConflicts.has(id)) problems.push(`${id}: ${n} unexpected idempotency conflicts`);
  problems.push(...dlqViolations(all, seen));
  problems.push(...balanceViolations(workload, decided, seen.balances));
  problems.push(...holdViolations(seen, seen.balances, seen.observedAtMs));
  return problems;
}

/** Kept for the tests: fails with every violation listed. */
export function checkPipeline(workload: Workload, seen: Observed): void {
  expect(pipelineViolations(workload, seen)).toEqual([]);
}

export function decidedOutcomes(
  seen: Observed,
  problems: string[],
): { decided: Map<string, Record<string, string>>; conflicts: Map<string, number> } {
  const decided = new Map<string, Record<string, string>>();
  const conflicts = new Map<string, number>();
  const all: Array<Record<string, string>> = [
    ...seen.completed.map((c) => ({ ...c, code: 'completed' })),
    ...seen.failed,
  ];
  for (const o of all) {
    // Answered under the hold's own id, with no command of its own: hold-checks.ts counts expiries.
    if (o.type === 'hold_expiry') continue;
    if (o.code === 'idempotency_conflict') {
      conflicts.set(o.transferId!, (conflicts.get(o.transferId!) ?? 0) + 1);
      continue;
    }
    if (decided.has(o.transferId!))
      problems.push(`${o.transferId}: a second outcome (${o.code} after ${decided.get(o.transferId!)!.code})`);
    decided.set(o.transferId!, o);
  }
  return { decided, conflicts };
}

/** The DLQ holds exactly the injected unparseable records (a re-sent one may appear twice), each with its error. */
function dlqViolations(all: WorkloadCommand[], seen: Observed): string[] {
  const problems: string[] = [];
  const markers = new Set(
    all.filter((c) => c.expect.kind === 'dlq').map((c) => (c.expect as { marker: string }).marker),
  );
  const markerOf = (value: string) => [...markers].find((m) => value.endsWith(m) || value.includes(`${m}"`));
  const found = new Set<string>();
  for (const d of seen.dlq) {
    const marker = markerOf(d.value);
    if (!marker) problems.push(`unexpected DLQ record: ${d.value.slice(0, 80)}`);
    else found.add(marker);
    if (!d.headers['bankstream.error'])
      problems.push(`DLQ record without bankstream.error header: ${d.value.slice(0, 80)}`);
  }
  for (const m of markers) if (!found.has(m)) problems.push(`${m}: missing from the DLQ`);
  return problems;
}

function balanceViolations(
  workload: Workload,
  decided: Map<string, Record<string, string>>,
  balances: Observed['balances'],
): string[] {
  const problems: string[] = [];
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
    if (o.type === 'transfer' || o.type === 'post_hold') {
      expected.set(o.from!, expected.get(o.from!)! - amount);
      expected.set(o.to!, expected.get(o.to!)! + amount);
    }
  }
  let total = 0n;
  for (const account of workload.accounts) {
    const row = balances.get(account) ?? { balance: '0', inFlight: '0' };
    const have = formatMoney(BigInt(row.balance), currencyDigits('EUR')!);
    const want = formatMoney(expected.get(account)!, 2);
    if (have !== want) problems.push(`${account}: balance ${have} in the store, ${want} from the outcomes`);
    if (row.inFlight !== '0') problems.push(`${account}: ${row.inFlight} still in flight`);
    if (BigInt(row.balance) < 0n) problems.push(`${account}: overdrawn (${have})`);
    total += BigInt(row.balance);
  }
  // The invariant: money is only moved, never created or destroyed.
  if (total !== deposits)
    problems.push(
      `invariant broken: Σ balances ${formatMoney(total, 2)} ≠ Σ completed deposits ${formatMoney(deposits, 2)}`,
    );
  return problems;
}
