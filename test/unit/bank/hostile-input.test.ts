// Fuzz test of the edge (issue 14): arbitrary bytes, arbitrary JSON, and commands whose strings are arbitrary
// Unicode (lone surrogates, NUL, controls, format characters, 100 kB fields), with huge numbers, `__proto__`,
// duplicate keys, a BOM, hostile keys, headers and timestamps, through the bank topology on the
// TopologyTestDriver. For every record: the processor never throws (the processing exception handler is
// never needed), the command gets exactly one answer (outcome, audit answer or dead letter; an exact
// duplicate none), and every record emitted is storable: the sink's own row builder accepts it, and every
// string in it, keys included, is well-formed UTF-16 without NUL (what Postgres text and jsonb accept).
// fast-check prints the seed and the shrunk counterexample on failure.
import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { parseRecord } from '../../../src/sinks/records.ts';
import { isStorableKey } from '../../../src/stores/keys.ts';
import type { ProcessingErrorInfo } from '../../../src/topology/processing-errors.ts';
import type { OutputRecord } from '../../../src/topology/task-graph.ts';
import { Bank, TOPICS } from './harness.ts';

const PARTITIONS = 4;
// alice in partition 1, bob in 2, erin in 0 (of 4): same-task and cross-task transfers both happen.
const ACCOUNTS = ['alice', 'bob', 'erin'];
const CHANGELOGS = ['accounts', 'balances', 'transfers'].map((s) => `test-app-${s}-changelog`);
const ANSWER_EVENTS = new Set(['account_opened', 'account_closed', 'account_command_rejected']);

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const control = fc.constantFrom('\u0000', '\u0001', '\t', '\n', '\r', '\u001b', '\u001f', '\u007f', '\u0085', '\u009f');
const formatChar = fc.constantFrom(
  '\u200b',
  '\u200d',
  '\u200e',
  '\u202e',
  '\u2066',
  '\ufeff',
  '\u00ad',
  '\u2028',
  '\u2029',
  '\ufffe',
  '\uffff',
);
const plainChar = fc.constantFrom('a', 'Z', '0', '-', '"', '\\', '/', ' ', 'é', 'ß', '中', '😀', '\ufffd');
const hostileChar = fc.oneof(
  { weight: 4, arbitrary: plainChar },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: loneSurrogate },
  { weight: 2, arbitrary: control },
  { weight: 1, arbitrary: formatChar },
);
const HUGE = 'x'.repeat(100_000);
const hostileString = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: hostileChar, maxLength: 10 }) },
  { weight: 1, arbitrary: fc.string({ unit: hostileChar, minLength: 250, maxLength: 260 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '',
      '__proto__',
      'constructor',
      HUGE,
      `t-${HUGE}`,
      'a'.repeat(256),
      'a'.repeat(257),
      'é'.repeat(256),
      '😀'.repeat(128),
      '😀'.repeat(129),
      't-\ud800',
      '\udc00t',
      'acc\u0000',
      'NaN',
    ),
  },
);
const hugeNumber = fc.constantFrom(1e308, -1e308, 2 ** 53 + 1, 0.1, 1e-320, 125.5, 0, -5);
const anyJson = fc.jsonValue({ maxDepth: 2 });

/** A field: usually a valid value, else hostile text, any JSON, a number or absent. */
function field(valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 8, arbitrary: valid },
    { weight: 3, arbitrary: hostileString },
    { weight: 1, arbitrary: anyJson },
    { weight: 1, arbitrary: hugeNumber },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

const account = fc.constantFrom(...ACCOUNTS, 'carol', 'dave');
const commandArb = fc.record(
  {
    type: fc.oneof(
      {
        weight: 12,
        arbitrary: fc.constantFrom(
          'open_account',
          'close_account',
          'deposit',
          'withdrawal',
          'transfer',
          'transfer',
          'transfer',
        ),
      },
      { weight: 1, arbitrary: hostileString },
    ),
    transferId: field(fc.nat({ max: 40 }).map((n) => `t-${n}`)),
    accountId: field(account),
    ownerId: field(fc.constantFrom('owner-1', 'owner-2')),
    from: field(account),
    to: field(account),
    amount: field(
      fc.constantFrom(
        '1.00',
        '0.01',
        '12.5',
        '100',
        '999999999999999999.99',
        '0',
        '-5.00',
        '1.001',
        '1e3',
        '+5',
        '0012',
      ),
    ),
    currency: field(fc.constantFrom('EUR', 'EUR', 'USD', 'JPY', 'eur')),
    reference: field(fc.string({ unit: plainChar, maxLength: 20 })),
    requestedAt: field(
      fc.constantFrom(
        '2026-03-01T12:00:00Z',
        '2026-03-01T12:00:00.123456+01:00',
        '9999-12-31T23:59:59-23:59',
        '1000-01-01T00:00:00+23:59',
        '+275760-09-13T00:00:00Z',
        '2026-02-30T00:00:00Z',
        '-000001-01-01T00:00:00Z',
      ),
    ),
    overdraftLimit: field(fc.constantFrom('0', '0.00', '100.00', '-1', '1e2')),
  },
  { requiredKeys: [] },
);

/** How a command object becomes bytes: plain JSON, or with a BOM, a duplicate key, `__proto__`, a huge number, an invalid UTF-8 byte. */
const encodingArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'plain' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'bom' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('duplicate' as const),
      name: fc.constantFrom('type', 'transferId', 'accountId', 'from', 'amount', 'reference'),
      value: fc.oneof(hostileString, anyJson),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('proto' as const), value: anyJson }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('number' as const),
      literal: fc.constantFrom(
        '1e999999',
        '-1e999999',
        '123456789012345678901234567890123456789',
        '0.0000000000000000000000001',
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('badUtf8' as const),
      bytes: fc.constantFrom([0xed, 0xa0, 0x80], [0xff], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80]),
    }),
  },
);
type Encoding = typeof encodingArb extends fc.Arbitrary<infer T> ? T : never;

function encode(command: Record<string, unknown>, encoding: Encoding): Buffer {
  const json = JSON.stringify(command);
  const body = json.slice(1);
  const prefix = (member: string) => `{${member}${body === '}' ? '' : ','}${body}`;
  switch (encoding.kind) {
    case 'plain':
      return Buffer.from(json, 'utf8');
    case 'bom':
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json, 'utf8')]);
    case 'duplicate':
      return Buffer.from(
        prefix(`${JSON.stringify(encoding.name)}:${JSON.stringify(encoding.value) ?? 'null'}`),
        'utf8',
      );
    case 'proto':
      return Buffer.from(prefix(`"__proto__":${JSON.stringify(encoding.value) ?? 'null'}`), 'utf8');
    case 'number':
      return Buffer.from(prefix(`"big":${encoding.literal}`), 'utf8');
    case 'badUtf8': {
      const bytes = Buffer.from(json, 'utf8');
      const at = Math.min(bytes.length, 2);
      return Buffer.concat([bytes.subarray(0, at), Buffer.from(encoding.bytes), bytes.subarray(at)]);
    }
  }
}

/** Record keys: the account acted on, null, hostile text, bytes that are not UTF-8, a 100 kB key. */
const keyArb = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ kind: 'account' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'null' as const }) },
  { weight: 2, arbitrary: hostileString.map((text) => ({ kind: 'text' as const, text })) },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ minLength: 1, maxLength: 8 })
      .map((bytes) => ({ kind: 'bytes' as const, bytes: Buffer.from(bytes) })),
  },
);
type KeyChoice = typeof keyArb extends fc.Arbitrary<infer T> ? T : never;

function keyBytes(choice: KeyChoice, command: Record<string, unknown>): Buffer | null {
  if (choice.kind === 'null') return null;
  if (choice.kind === 'bytes') return choice.bytes;
  if (choice.kind === 'text') return Buffer.from(choice.text, 'utf8');
  const owner = command['type'] === 'transfer' ? command['from'] : command['accountId'];
  return typeof owner === 'string' ? Buffer.from(owner, 'utf8') : null;
}

const headersArb = fc.option(
  fc.dictionary(
    fc.oneof(hostileString, fc.constantFrom('__proto__', 'bankstream.error')),
    fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b)),
    { maxKeys: 3 },
  ),
  { nil: undefined },
);
const timestampArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant(Date.UTC(2026, 0, 1)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      -1,
      0,
      -8_640_000_000_000_000,
      8_640_000_000_000_000,
      Date.UTC(9999, 11, 31, 23, 59, 59, 999) + 1,
      Date.UTC(999, 11, 31),
    ),
  },
);

type Wire = {
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer>;
  timestamp: number;
  partition: number;
};

const commandWireArb: fc.Arbitrary<Wire> = fc
  .record({
    command: commandArb,
    encoding: encodingArb,
    key: keyArb,
    headers: headersArb,
    timestamp: timestampArb,
    misroute: fc.nat({ max: 9 }),
  })
  .map(({ command, encoding, key, headers, timestamp, misroute }) => {
    const bytes = keyBytes(key, command as Record<string, unknown>);
    // Mostly on the partition the key hashes to; sometimes elsewhere (the engine re-routes it).
    const partition =
      bytes === null || bytes.length === 0 || misroute === 0
        ? misroute % PARTITIONS
        : partitionForKey(bytes, PARTITIONS);
    return {
      key: bytes,
      value: encode(command as Record<string, unknown>, encoding),
      headers: nullProto(headers ?? {}),
      timestamp,
      partition,
    };
  });
const garbageWireArb: fc.Arbitrary<Wire> = fc
  .record({
    value: fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
      anyJson.map((v) => Buffer.from(JSON.stringify(v) ?? 'null', 'utf8')),
      fc.constantFrom(
        null,
        Buffer.alloc(0),
        Buffer.from('\ufeff{}'),
        Buffer.from(`{"type":"deposit","transferId":"t-1"${',"a":1'.repeat(10)}`),
        Buffer.from('['.repeat(100_000)),
      ),
    ),
    key: fc.option(
      fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b)),
      { nil: null },
    ),
    partition: fc.nat({ max: PARTITIONS - 1 }),
  })
  .map(({ value, key, partition }) => ({ value, key, partition, headers: {}, timestamp: Date.UTC(2026, 0, 1) }));
const wireArb = fc.oneof({ weight: 9, arbitrary: commandWireArb }, { weight: 1, arbitrary: garbageWireArb });

function nullProto(headers: Record<string, Buffer>): Record<string, Buffer> {
  // As the Fetcher builds them: a "__proto__" header is an own property, not a prototype.
  const out = Object.create(null) as Record<string, Buffer>;
  for (const [name, value] of Object.entries(headers)) out[name] = value;
  return out;
}

/** The transferId the parser will see (JSON.parse: the last duplicate wins), when the value parses. */
function transferIdOf(value: Buffer | null): string | undefined {
  if (value === null || !isUtf8(value)) return undefined;
  try {
    const json: unknown = JSON.parse(value.toString('utf8'));
    const id = typeof json === 'object' && json !== null ? (json as Record<string, unknown>)['transferId'] : undefined;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

/** Postgres text and jsonb: well-formed UTF-16 (no lone surrogate) and no NUL, in every string, keys included. */
function unstorable(value: unknown, path: string): string | undefined {
  if (typeof value === 'string')
    return !value.isWellFormed() || value.includes('\u0000') ? `${path} is not storable` : undefined;
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [name, item] of Object.entries(value)) {
    const found = unstorable(name, `${path} key`) ?? unstorable(item, `${path}.${name}`);
    if (found) return found;
  }
  return undefined;
}

function checkStorable(record: OutputRecord): void {
  const where = `${record.topic} record ${record.key?.toString('utf8').slice(0, 40)}`;
  for (const bytes of [record.key, record.value]) {
    if (bytes === null) continue;
    expect(isUtf8(bytes), `${where}: bytes are not UTF-8`).toBe(true);
  }
  if (CHANGELOGS.includes(record.topic)) {
    // Changelog keys are store keys (well-formed; the transfers store's dedup keys hold NUL separators by
    // design, src/bank/stores.ts dedupKey), never Postgres text.
    if (record.key !== null)
      expect(isStorableKey(record.key.toString('utf8')), `${where}: key is not a store key`).toBe(true);
    return;
  }
  if (record.key !== null) expect(unstorable(record.key.toString('utf8'), 'key'), where).toBeUndefined();
  if (record.value === null) return;
  expect(unstorable(JSON.parse(record.value.toString('utf8')), 'value'), where).toBeUndefined();
  if (record.topic === TOPICS.credits) return;
  const row = parseRecord(TOPICS, {
    topic: record.topic,
    partition: record.partition,
    offset: 0n,
    key: record.key,
    value: record.value,
  });
  expect(
    row.kind === 'reject' ? row.row.error : 'stored',
    `${where}: ${record.value.toString('utf8').slice(0, 300)}`,
  ).toBe('stored');
}

/** Each account's balance equals what its completed outcomes say, and nothing is left in flight. */
async function checkBalances(bank: Bank): Promise<void> {
  const expected = new Map<string, bigint>();
  const add = (id: string | undefined, delta: bigint) => {
    if (id !== undefined) expected.set(id, (expected.get(id) ?? 0n) + delta);
  };
  for (const r of bank.driver.records(TOPICS.completed)) {
    const o = JSON.parse(r.value!.toString('utf8')) as Record<string, string>;
    const minor = BigInt(o['amount']!.replace('.', ''));
    if (o['type'] === 'deposit') add(o['accountId'], minor);
    else if (o['type'] === 'withdrawal') add(o['accountId'], -minor);
    else {
      add(o['from'], -minor);
      add(o['to'], minor);
    }
  }
  for (const [id, row] of await bank.balances()) {
    expect(row.inFlight, `${id} in flight`).toBe('0');
    expect(BigInt(row.balance), `${id} balance`).toBe(expected.get(id) ?? 0n);
  }
}

const WATCHED = [TOPICS.completed, TOPICS.failed, TOPICS.audit, TOPICS.dlq, TOPICS.credits, ...CHANGELOGS];

describe('hostile input through the bank topology', () => {
  it('should answer every record exactly once with storable records and never throw when fed arbitrary bytes, JSON and Unicode', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(wireArb, { minLength: 1, maxLength: 4 }), async (wires) => {
        const errors: ProcessingErrorInfo[] = [];
        const bank = new Bank({}, PARTITIONS, { onProcessingError: (info) => errors.push(info) });
        const used = new Set<string>();
        for (const [i, id] of ACCOUNTS.entries()) {
          await bank.open(id, i === 2 ? 'USD' : 'EUR');
          await bank.deposit(`seed-${id}`, id, '1000.00', i === 2 ? 'USD' : 'EUR');
        }
        for (const wire of wires) {
          const before = new Map(WATCHED.map((t) => [t, bank.driver.records(t).length]));
          await bank.driver.pipeRaw(TOPICS.input, wire.partition, wire.key, wire.value, wire.timestamp, wire.headers);
          expect(errors.map((e) => `${e.node} ${e.phase}: ${String(e.error)}`)).toEqual([]);
          const fresh = (topic: string) => bank.driver.records(topic).slice(before.get(topic));
          // Dead letters are the original bytes by contract (nothing sinks them); everything else must be storable.
          for (const topic of WATCHED) if (topic !== TOPICS.dlq) for (const r of fresh(topic)) checkStorable(r);
          const dlq = fresh(TOPICS.dlq);
          for (const d of dlq) expect(d.headers['bankstream.source.topic']?.toString()).toBe(TOPICS.input);
          const answers =
            fresh(TOPICS.completed).length +
            fresh(TOPICS.failed).length +
            dlq.length +
            fresh(TOPICS.audit).filter((r) =>
              ANSWER_EVENTS.has((JSON.parse(r.value!.toString()) as { event: string }).event),
            ).length;
          // An exact duplicate of an earlier transferId gets no answer; everything else exactly one.
          const transferId = transferIdOf(wire.value);
          if (transferId !== undefined && used.has(transferId)) expect(answers).toBeLessThanOrEqual(1);
          else expect(answers).toBe(1);
          if (transferId !== undefined) used.add(transferId);
        }
        await checkBalances(bank);
        bank.driver.close();
      }),
      { numRuns: 2000 },
    );
  }, 120_000);

  it('should never throw and emit only storable records when the credits topic carries hostile legs', async () => {
    const legArb = fc.record(
      {
        leg: fc.oneof(fc.constantFrom('credit', 'settle', 'refund'), hostileString),
        transferId: field(fc.constantFrom('t-1', 't-2')),
        from: field(account),
        to: field(account),
        amount: field(fc.constantFrom('1.00', '0', '-1.00', '1.001')),
        currency: field(fc.constantFrom('EUR', 'USD')),
        requestedAt: field(
          fc.constantFrom('2026-03-01T12:00:00.000Z', '2026-03-01T12:00:00+01:00', '+275760-09-13T00:00:00Z'),
        ),
        reference: field(fc.constantFrom('rent')),
        code: field(fc.constantFrom('account_closed', 'account_not_found', 'insufficient_funds')),
        reason: field(fc.constantFrom('account bob is closed')),
      },
      { requiredKeys: [] },
    );
    const wire = fc.record({ leg: legArb, encoding: encodingArb, key: keyArb });
    await fc.assert(
      fc.asyncProperty(fc.array(wire, { minLength: 1, maxLength: 3 }), async (legs) => {
        const errors: ProcessingErrorInfo[] = [];
        const bank = new Bank({}, PARTITIONS, { onProcessingError: (info) => errors.push(info) });
        for (const id of ACCOUNTS) {
          await bank.open(id);
          await bank.deposit(`seed-${id}`, id, '1000.00');
        }
        for (const { leg, encoding, key } of legs) {
          const owner = leg['leg'] === 'credit' ? leg['to'] : leg['from'];
          const bytes =
            key.kind === 'account'
              ? typeof owner === 'string'
                ? Buffer.from(owner, 'utf8')
                : null
              : keyBytes(key, {});
          const before = new Map(WATCHED.map((t) => [t, bank.driver.records(t).length]));
          const partition = bytes === null || bytes.length === 0 ? 0 : partitionForKey(bytes, PARTITIONS);
          await bank.driver.pipeRaw(
            TOPICS.credits,
            partition,
            bytes,
            encode(leg as Record<string, unknown>, encoding),
            Date.UTC(2026, 0, 1),
            {},
          );
          expect(errors.map((e) => `${e.node} ${e.phase}: ${String(e.error)}`)).toEqual([]);
          // The credits log starts with the piped leg itself; what the topology wrote follows it.
          before.set(TOPICS.credits, before.get(TOPICS.credits)! + 1);
          for (const topic of WATCHED)
            if (topic !== TOPICS.dlq)
              for (const r of bank.driver.records(topic).slice(before.get(topic))) checkStorable(r);
        }
        bank.driver.close();
      }),
      { numRuns: 1000 },
    );
  }, 120_000);
});
