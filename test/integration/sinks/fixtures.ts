// A deterministic stream of outcome and audit records, as the bank topology would emit them, with
// the read model Postgres must end up holding. Money is kept in bigint cents here.
import { Admin, Producer } from '@platformatic/kafka';
import type { SinkTopics } from '../../../src/sinks/records.ts';
import { TEST_BROKERS } from '../support/kafka.ts';

export interface Message {
  topic: string;
  key: string;
  value: string;
}

export interface Expected {
  balances: Map<string, bigint>;
  statuses: Map<string, 'COMPLETED' | 'FAILED'>;
  conflicts: number;
  audits: number;
  rejects: number;
  closed: string[];
}

export interface Scenario {
  committed: Message[];
  expected: Expected;
}

/** A small linear congruential generator: the same scenario on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

export function cents(value: bigint): string {
  const sign = value < 0n ? '-' : '';
  const abs = value < 0n ? -value : value;
  return `${sign}${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
}

const AT = '2026-01-02T03:04:05.678Z';

/** `operations` money outcomes over `accounts` EUR accounts, plus one conflict, one closure, one poison record. */
export function buildScenario(
  topics: SinkTopics,
  operations: number,
  accounts = 8,
  seed = 42,
  idPrefix = 't',
): Scenario {
  const next = random(seed);
  const ids = Array.from({ length: accounts }, (_, i) => `${idPrefix}-acc-${i}`);
  const balances = new Map(ids.map((id) => [id, 0n]));
  const statuses = new Map<string, 'COMPLETED' | 'FAILED'>();
  const committed: Message[] = [];
  const audit = (value: object, key: string) =>
    committed.push({ topic: topics.audit, key, value: JSON.stringify({ ...value, at: AT }) });
  const outcome = (fields: Record<string, string>, code?: string) => {
    const base = { ...fields, currency: 'EUR', requestedAt: AT, completedAt: AT };
    const value = code ? { ...base, code, reason: `failed with ${code}` } : base;
    committed.push({
      topic: code ? topics.failed : topics.completed,
      key: fields.transferId ?? '',
      value: JSON.stringify(value),
    });
  };
  for (const id of ids)
    audit(
      { event: 'account_opened', accountId: id, ownerId: `owner-${id}`, currency: 'EUR', overdraftLimit: '0.00' },
      id,
    );
  for (let i = 0; i < operations; i++) {
    const transferId = `${idPrefix}-tr-${i}`;
    const amount = BigInt(1 + Math.floor(next() * 50_000));
    const a = ids[Math.floor(next() * ids.length)] ?? '';
    const b = ids[Math.floor(next() * ids.length)] ?? '';
    const kind = next();
    if (kind < 0.4) {
      balances.set(a, (balances.get(a) ?? 0n) + amount);
      statuses.set(transferId, 'COMPLETED');
      outcome({ transferId, type: 'deposit', accountId: a, amount: cents(amount) });
    } else if (kind < 0.6 || a === b) {
      const ok = (balances.get(a) ?? 0n) >= amount;
      if (ok) balances.set(a, (balances.get(a) ?? 0n) - amount);
      statuses.set(transferId, ok ? 'COMPLETED' : 'FAILED');
      outcome(
        { transferId, type: 'withdrawal', accountId: a, amount: cents(amount) },
        ok ? undefined : 'insufficient_funds',
      );
    } else {
      const ok = (balances.get(a) ?? 0n) >= amount;
      if (ok) {
        balances.set(a, (balances.get(a) ?? 0n) - amount);
        balances.set(b, (balances.get(b) ?? 0n) + amount);
      }
      statuses.set(transferId, ok ? 'COMPLETED' : 'FAILED');
      outcome(
        { transferId, type: 'transfer', from: a, to: b, amount: cents(amount), reference: `ref ${i}\twith\\tab` },
        ok ? undefined : 'insufficient_funds',
      );
    }
  }
  // A conflicting duplicate of the first transfer: recorded apart, the original outcome stands.
  outcome(
    { transferId: `${idPrefix}-tr-0`, type: 'deposit', accountId: ids[0] ?? '', amount: '999.99' },
    'idempotency_conflict',
  );
  // A malformed failure keeps only what is storable.
  outcome(
    { transferId: `${idPrefix}-malformed`, type: 'withdrawal', accountId: ids[1] ?? '', amount: 'abc' },
    'malformed',
  );
  statuses.set(`${idPrefix}-malformed`, 'FAILED');
  // Empty the last account and close it: it must read closed with 0.00.
  const last = ids.at(-1) ?? '';
  const rest = balances.get(last) ?? 0n;
  if (rest > 0n) {
    outcome({ transferId: `${idPrefix}-close-out`, type: 'withdrawal', accountId: last, amount: cents(rest) });
    statuses.set(`${idPrefix}-close-out`, 'COMPLETED');
    balances.set(last, 0n);
  }
  audit({ event: 'account_closed', accountId: last }, last);
  committed.push({ topic: topics.completed, key: 'poison', value: 'this is not JSON' });
  const audits = committed.filter((m) => m.topic === topics.audit).length;
  return { committed, expected: { balances, statuses, conflicts: 1, audits, rejects: 1, closed: [last] } };
}

/** Records that only ever appear in aborted transactions: none of them may reach Postgres. */
export function abortedMessages(topics: SinkTopics, count: number, tag: string): Message[] {
  return Array.from({ length: count }, (_, i) =>
    i % 3 === 2
      ? {
          topic: topics.audit,
          key: `aborted-acc-${tag}`,
          value: JSON.stringify({
            event: 'account_opened',
            accountId: `aborted-acc-${tag}`,
            ownerId: 'x',
            currency: 'EUR',
            overdraftLimit: '0.00',
            at: AT,
          }),
        }
      : {
          topic: topics.completed,
          key: `aborted-${tag}-${i}`,
          value: JSON.stringify({
            transferId: `aborted-${tag}-${i}`,
            type: 'deposit',
            accountId: 'aborted-acc',
            amount: '1000000.00',
            currency: 'EUR',
            requestedAt: AT,
            completedAt: AT,
          }),
        },
  );
}

export interface TestProducer {
  /** Sends the messages in transactions of `perTransaction`, aborting an extra transaction of junk every `abortEvery` commits. */
  produce(messages: Message[], options?: { perTransaction?: number; abortEvery?: number }): Promise<void>;
  close(): Promise<void>;
}

export async function createTestProducer(transactionalId: string, topics: SinkTopics): Promise<TestProducer> {
  const producer = new Producer({
    clientId: transactionalId,
    bootstrapBrokers: TEST_BROKERS,
    transactionalId,
    idempotent: true,
    acks: -1,
    timeout: 30_000,
    retries: 20,
    retryDelay: 20,
  });
  await producer.initIdempotentProducer({});
  let aborts = 0;
  const send = async (messages: Message[], commit: boolean) => {
    const tx = await producer.beginTransaction();
    await tx.send({
      messages: messages.map((m) => ({ topic: m.topic, key: Buffer.from(m.key), value: Buffer.from(m.value) })),
    });
    await (commit ? tx.commit() : tx.abort());
  };
  return {
    async produce(messages, options = {}) {
      const perTransaction = options.perTransaction ?? 20;
      const abortEvery = options.abortEvery ?? 3;
      for (let start = 0, n = 0; start < messages.length; start += perTransaction, n++) {
        // Aborted transactions between committed ones, twice in a row now and then: the same
        // producer id aborting twice inside one fetched range is the case the library mishandles.
        if (n % abortEvery === 0) {
          await send(abortedMessages(topics, 6, String(aborts++)), false);
          if (n % (abortEvery * 2) === 0) await send(abortedMessages(topics, 6, String(aborts++)), false);
        }
        await send(messages.slice(start, start + perTransaction), true);
      }
    },
    async close() {
      await producer.close();
    },
  };
}

/** The high watermark of every partition of the topics, keyed "topic:partition". */
export async function endOffsets(topics: string[]): Promise<Map<string, bigint>> {
  const admin = new Admin({ clientId: 'bankstream-test-offsets', bootstrapBrokers: TEST_BROKERS });
  try {
    const metadata = await admin.metadata({ topics });
    const listed = await admin.listOffsets({
      topics: topics.map((name) => ({
        name,
        partitions: Array.from({ length: metadata.topics.get(name)?.partitionsCount ?? 0 }, (_, partitionIndex) => ({
          partitionIndex,
          timestamp: -1n,
        })),
      })),
    });
    const result = new Map<string, bigint>();
    for (const topic of listed)
      for (const p of topic.partitions) result.set(`${topic.name}:${p.partitionIndex}`, p.offset);
    return result;
  } finally {
    await admin.close();
  }
}
