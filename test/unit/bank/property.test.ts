// Property test: random command sequences over 4 partitions, against a plain sequential reference model.
// The test driver processes each piped record to quiescence (legs included) before the next one, so a
// model that applies each command whole, in order, is exact. Dedup in the model is per partition, as in
// the processor: the transfers store lives in the task that owns the record's key.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { Bank, type BalanceRow, TOPICS } from './harness.ts';

// Spread over all 4 partitions (alice 1, bob 2, carol 2, erin 0, frank 3, heidi 3): same-task and cross-task pairs.
const ACCOUNTS = ['alice', 'bob', 'carol', 'erin', 'frank', 'heidi'];
const BAD_VARIANTS = [
  'amountNumber',
  'zero',
  'negative',
  'overPrecise',
  'unknownCurrency',
  'keyMismatch',
  'nullKey',
  'garbage',
  'noTransferId',
  'openMalformed',
] as const;
type BadVariant = (typeof BAD_VARIANTS)[number];

type Op =
  | { op: 'open'; account: string; currency: string; overdraft: bigint }
  | { op: 'close'; account: string }
  | { op: 'deposit' | 'withdrawal'; account: string; amount: bigint; currency: string }
  | { op: 'transfer'; from: string; to: string; amount: bigint; currency: string }
  | { op: 'dup'; index: number }
  | { op: 'conflict'; index: number; amount: bigint }
  | { op: 'bad'; variant: BadVariant; transfer: boolean; account: string; other: string; amount: bigint };

const account = fc.constantFrom(...ACCOUNTS);
const currency = fc.constantFrom('EUR', 'EUR', 'EUR', 'USD');
const amount = fc.bigInt({ min: 1n, max: 6000n });
/** Most accounts opened and funded first, so that later commands mostly meet real accounts. */
const setupArb: fc.Arbitrary<Op[]> = fc
  .tuple(
    ...ACCOUNTS.map((id) =>
      fc
        .record({
          open: fc.integer({ min: 0, max: 9 }).map((n) => n < 9),
          currency: fc.constantFrom('EUR', 'EUR', 'EUR', 'USD'),
          overdraft: fc.constantFrom(0n, 1500n),
          funds: fc.bigInt({ min: 0n, max: 20_000n }),
        })
        .map((a) => ({ id, ...a })),
    ),
  )
  .map((accounts) =>
    accounts.flatMap((a): Op[] => {
      if (!a.open) return [];
      const open: Op = { op: 'open', account: a.id, currency: a.currency, overdraft: a.overdraft };
      return a.funds > 0n ? [open, { op: 'deposit', account: a.id, amount: a.funds, currency: a.currency }] : [open];
    }),
  );

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('open' as const),
      account,
      currency,
      overdraft: fc.constantFrom(0n, 0n, 1500n),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('close' as const), account }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('deposit' as const), account, amount, currency }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('withdrawal' as const), account, amount, currency }) },
  {
    weight: 6,
    arbitrary: fc.record({ op: fc.constant('transfer' as const), from: account, to: account, amount, currency }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('dup' as const), index: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('conflict' as const), index: fc.nat(), amount }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('bad' as const),
      variant: fc.constantFrom(...BAD_VARIANTS),
      transfer: fc.boolean(),
      account,
      other: account,
      amount,
    }),
  },
);

/** What the model needs to know about a command, decided by the generator, not by the parser. */
type ModelCommand =
  | { kind: 'dlq' }
  | { kind: 'open'; accountId: string; currency: string; overdraft: bigint; malformed: boolean }
  | { kind: 'close'; accountId: string }
  | {
      kind: 'money';
      type: 'deposit' | 'withdrawal' | 'transfer';
      transferId: string;
      accountId: string;
      to: string;
      amount: bigint;
      currency: string;
      /** Refusal caused by the amount field (a conflict with a new, valid amount clears it). */
      amountReject: 'malformed' | 'invalid_amount' | undefined;
      /** Refusal caused by another field or the key; malformed wins over invalid_amount. */
      otherReject: 'malformed' | undefined;
      fingerprint: string;
    };

interface Wire {
  key: string | null;
  value: Buffer;
  model: ModelCommand;
  raw: Record<string, unknown> | undefined;
}

function decimal(minor: bigint): string {
  return `${minor / 100n}.${String(minor % 100n).padStart(2, '0')}`;
}

function moneyWire(
  type: 'deposit' | 'withdrawal' | 'transfer',
  transferId: string,
  from: string,
  to: string,
  minor: bigint,
  cur: string,
): Wire {
  const raw: Record<string, unknown> =
    type === 'transfer'
      ? { type, transferId, from, to, amount: decimal(minor), currency: cur }
      : { type, transferId, accountId: from, amount: decimal(minor), currency: cur };
  return withRaw(from, raw, {
    kind: 'money',
    type,
    transferId,
    accountId: from,
    to,
    amount: minor,
    currency: cur,
    amountReject: undefined,
    otherReject: undefined,
    fingerprint: '',
  });
}

function withRaw(key: string | null, raw: Record<string, unknown>, model: ModelCommand): Wire {
  if (model.kind === 'money') model.fingerprint = JSON.stringify(raw);
  return { key, value: Buffer.from(JSON.stringify(raw)), model, raw };
}

/** Turns generated ops into wire records; dup and conflict refer to earlier records. */
function materialize(ops: Op[]): Wire[] {
  const wires: Wire[] = [];
  for (const [i, op] of ops.entries()) {
    const id = `t-${i}`;
    if (op.op === 'open') {
      const raw = {
        type: 'open_account',
        accountId: op.account,
        ownerId: 'o',
        currency: op.currency,
        overdraftLimit: decimal(op.overdraft),
      };
      wires.push(
        withRaw(op.account, raw, {
          kind: 'open',
          accountId: op.account,
          currency: op.currency,
          overdraft: op.overdraft,
          malformed: false,
        }),
      );
    } else if (op.op === 'close') {
      wires.push(
        withRaw(op.account, { type: 'close_account', accountId: op.account }, { kind: 'close', accountId: op.account }),
      );
    } else if (op.op === 'deposit' || op.op === 'withdrawal') {
      wires.push(moneyWire(op.op, id, op.account, op.account, op.amount, op.currency));
    } else if (op.op === 'transfer') {
      wires.push(moneyWire('transfer', id, op.from, op.to, op.amount, op.currency));
    } else if (op.op === 'dup') {
      if (wires.length > 0) wires.push(wires[op.index % wires.length]!);
    } else if (op.op === 'conflict') {
      const money = wires.filter((w) => w.model.kind === 'money');
      const original = money[op.index % Math.max(money.length, 1)];
      if (original?.raw && original.model.kind === 'money') {
        const raw = { ...original.raw, amount: decimal(op.amount) };
        wires.push(withRaw(original.key, raw, { ...original.model, amount: op.amount, amountReject: undefined }));
      }
    } else if (op.op === 'bad') {
      wires.push(badWire(op, id));
    }
  }
  return wires;
}

function badWire(op: Extract<Op, { op: 'bad' }>, id: string): Wire {
  const base = moneyWire(op.transfer ? 'transfer' : 'deposit', id, op.account, op.other, op.amount, 'EUR');
  const raw = base.raw!;
  const model = base.model as Extract<ModelCommand, { kind: 'money' }>;
  switch (op.variant) {
    case 'amountNumber':
      return withRaw(op.account, { ...raw, amount: Number(op.amount) / 100 }, { ...model, amountReject: 'malformed' });
    case 'zero':
      return withRaw(op.account, { ...raw, amount: '0.00' }, { ...model, amountReject: 'invalid_amount' });
    case 'negative':
      return withRaw(
        op.account,
        { ...raw, amount: `-${decimal(op.amount)}` },
        { ...model, amountReject: 'invalid_amount' },
      );
    case 'overPrecise':
      return withRaw(
        op.account,
        { ...raw, amount: `${decimal(op.amount)}1` },
        { ...model, amountReject: 'invalid_amount' },
      );
    case 'unknownCurrency':
      return withRaw(op.account, { ...raw, currency: 'XYZ' }, { ...model, otherReject: 'malformed' });
    case 'keyMismatch': {
      const key = op.other === op.account ? `${op.account}-x` : op.other;
      return withRaw(key, raw, { ...model, otherReject: 'malformed' });
    }
    case 'nullKey':
      return withRaw(null, raw, { ...model, otherReject: 'malformed' });
    case 'garbage':
      return {
        key: op.account,
        value: Buffer.from(`{"type":"deposit","transferId":"${id}"`),
        model: { kind: 'dlq' },
        raw: undefined,
      };
    case 'noTransferId': {
      const { transferId: _, ...rest } = raw;
      return withRaw(op.account, rest, { kind: 'dlq' });
    }
    case 'openMalformed':
      return withRaw(
        op.account,
        { type: 'open_account', accountId: op.account, ownerId: 'o', currency: 'EUR', overdraftLimit: 5 },
        { kind: 'open', accountId: op.account, currency: 'EUR', overdraft: 0n, malformed: true },
      );
  }
}

interface ModelAccount {
  currency: string;
  overdraft: bigint;
  open: boolean;
  balance: bigint;
}

/** What one command must produce. */
interface Expected {
  completed: string[];
  failed: Array<[string, string]>;
  accountEvents: Array<[string, string | undefined]>;
  dlq: number;
}

class Model {
  readonly accounts = new Map<string, ModelAccount>();
  readonly #dedup = new Map<string, { fingerprint: string; conflicts: Set<string> }>();
  readonly #partitionOf: (key: string) => number;

  constructor(partitionOf: (key: string) => number) {
    this.#partitionOf = partitionOf;
  }

  apply(wire: Wire): Expected {
    const expected: Expected = { completed: [], failed: [], accountEvents: [], dlq: 0 };
    const m = wire.model;
    if (m.kind === 'dlq') expected.dlq = 1;
    else if (m.kind === 'open') expected.accountEvents.push(this.#open(m));
    else if (m.kind === 'close') expected.accountEvents.push(this.#close(m.accountId));
    else {
      const partition = wire.key === null ? 0 : this.#partitionOf(wire.key);
      const result = this.#money(m, `${partition}|${m.transferId}`);
      if (result === 'completed') expected.completed.push(m.transferId);
      else if (result !== undefined) expected.failed.push([m.transferId, result]);
    }
    return expected;
  }

  #open(m: Extract<ModelCommand, { kind: 'open' }>): [string, string | undefined] {
    if (m.malformed) return ['account_command_rejected', 'malformed'];
    if (this.accounts.has(m.accountId)) return ['account_command_rejected', 'account_exists'];
    this.accounts.set(m.accountId, { currency: m.currency, overdraft: m.overdraft, open: true, balance: 0n });
    return ['account_opened', undefined];
  }

  #close(accountId: string): [string, string | undefined] {
    const account = this.accounts.get(accountId);
    if (!account) return ['account_command_rejected', 'account_not_found'];
    if (!account.open) return ['account_command_rejected', 'account_closed'];
    if (account.balance !== 0n) return ['account_command_rejected', 'balance_not_zero'];
    account.open = false;
    return ['account_closed', undefined];
  }

  #money(m: Extract<ModelCommand, { kind: 'money' }>, dedupKey: string): string | undefined {
    const entry = this.#dedup.get(dedupKey);
    if (entry) {
      if (entry.fingerprint === m.fingerprint || entry.conflicts.has(m.fingerprint)) return undefined;
      entry.conflicts.add(m.fingerprint);
      return 'idempotency_conflict';
    }
    this.#dedup.set(dedupKey, { fingerprint: m.fingerprint, conflicts: new Set() });
    const reject = m.otherReject ?? m.amountReject;
    if (reject) return reject;
    if (m.type === 'transfer' && m.accountId === m.to) return 'same_account';
    const from = this.accounts.get(m.accountId);
    const refusal = this.#refusal(from, m.currency);
    if (refusal) return refusal;
    if (m.type === 'deposit') {
      from!.balance += m.amount;
      return 'completed';
    }
    if (from!.balance - m.amount < -from!.overdraft) return 'insufficient_funds';
    if (m.type === 'transfer') {
      const to = this.accounts.get(m.to);
      const toRefusal = this.#refusal(to, m.currency);
      if (toRefusal) return toRefusal;
      to!.balance += m.amount;
    }
    from!.balance -= m.amount;
    return 'completed';
  }

  #refusal(account: ModelAccount | undefined, cur: string): string | undefined {
    if (!account) return 'account_not_found';
    if (!account.open) return 'account_closed';
    if (account.currency !== cur) return 'currency_mismatch';
    return undefined;
  }
}

async function sendAll(
  bank: Bank,
  model: Model,
  wires: Wire[],
  totals: { deposits: bigint; withdrawals: bigint },
): Promise<void> {
  for (const wire of wires) {
    const partition = wire.key === null ? 0 : bank.driver.partitionOf(wire.key);
    await bank.sendRaw(wire.key, wire.value, { partition });
    const expected = model.apply(wire);
    const completed = bank.completed();
    const failed = bank.failed();
    const audit = bank.audit().map((r) => r.value);
    const context = JSON.stringify({ wire: wire.value.toString(), key: wire.key });
    expect(
      completed.map((r) => r.key),
      context,
    ).toEqual(expected.completed);
    expect(
      failed.map((r) => [r.key, r.value['code']]),
      context,
    ).toEqual(expected.failed);
    expect(bank.dlq().length, context).toBe(expected.dlq);
    expect(
      audit.filter((e) => e['event']!.startsWith('account_')).map((e) => [e['event'], e['code']]),
      context,
    ).toEqual(expected.accountEvents);
    expect(audit.filter((e) => e['event'] === 'transfer_completed').length, context).toBe(completed.length);
    expect(audit.filter((e) => e['event'] === 'transfer_failed').length, context).toBe(failed.length);
    for (const refunded of audit.filter((e) => e['event'] === 'transfer_refunded')) {
      expect(['account_not_found', 'account_closed', 'currency_mismatch']).toContain(refunded['code']);
    }
    for (const { value } of completed) {
      const minor = BigInt(value['amount']!.replace('.', ''));
      if (value['type'] === 'deposit') totals.deposits += minor;
      if (value['type'] === 'withdrawal') totals.withdrawals += minor;
    }
  }
}

async function checkState(bank: Bank, model: Model, totals: { deposits: bigint; withdrawals: bigint }): Promise<void> {
  const balances = await bank.balances();
  let sum = 0n;
  for (const [id, row] of balances) {
    expect(row.inFlight, id).toBe('0');
    expect(BigInt(row.balance), id).toBe(model.accounts.get(id)?.balance);
    sum += BigInt(row.balance);
  }
  expect([...balances.keys()].sort()).toEqual([...model.accounts.keys()].sort());
  expect(sum).toBe(totals.deposits - totals.withdrawals);
  const accounts = await bank.driver.storeEntries<{ status: string }>('accounts');
  for (const [id, account] of model.accounts)
    expect(accounts.get(id)?.status, id).toBe(account.open ? 'open' : 'closed');
  const transfers = await bank.dedupEntries<{ status: string }>();
  expect([...transfers.values()].filter((t) => t.status === 'in_flight')).toEqual([]);
  // Every balance ever written (the changelog holds each write) stayed within the overdraft.
  for (const r of bank.driver.records(`test-app-balances-changelog`)) {
    const row = JSON.parse(r.value!.toString()) as BalanceRow;
    const id = r.key!.toString();
    expect(BigInt(row.balance), id).toBeGreaterThanOrEqual(-model.accounts.get(id)!.overdraft);
    expect(BigInt(row.inFlight), id).toBeGreaterThanOrEqual(0n);
  }
}

describe('bank processor against a sequential model', () => {
  test('should give every command exactly the model outcome and keep the invariants when random sequences are replayed', async () => {
    await fc.assert(
      fc.asyncProperty(
        setupArb,
        fc.array(opArb, { minLength: 1, maxLength: 80, size: 'max' }),
        async (setup, commands) => {
          const ops = [...setup, ...commands];
          const bank = new Bank();
          const model = new Model((key) => bank.driver.partitionOf(key));
          const wires = materialize(ops);
          const totals = { deposits: 0n, withdrawals: 0n };
          await sendAll(bank, model, wires, totals);
          await checkState(bank, model, totals);
          // Replay everything: no new money outcome, balances and dedup entries untouched. Only account
          // commands (which carry no idempotency key) may act again, exactly as the model says.
          const balances = await bank.balances();
          const transfers = await bank.dedupEntries();
          const outcomesBefore =
            bank.driver.records(TOPICS.completed).length + bank.driver.records(TOPICS.failed).length;
          await sendAll(bank, model, wires, totals);
          expect(bank.driver.records(TOPICS.completed).length + bank.driver.records(TOPICS.failed).length).toBe(
            outcomesBefore,
          );
          expect(await bank.balances()).toEqual(balances);
          expect(await bank.dedupEntries()).toEqual(transfers);
          await checkState(bank, model, totals);
          bank.driver.close();
        },
      ),
      { numRuns: 150 },
    );
  });
});
