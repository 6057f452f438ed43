import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeField } from '../../../src/sinks/copy.ts';
import { type SinkRow, type SourceRecord, parseRecord, storableText } from '../../../src/sinks/records.ts';

const TOPICS = { completed: 'completed', failed: 'failed', audit: 'audit' };
const AT = '2026-01-02T03:04:05.678Z';

function parse(topic: string, value: unknown): SinkRow {
  const bytes = typeof value === 'string' ? Buffer.from(value) : Buffer.from(JSON.stringify(value));
  const record: SourceRecord = { topic, partition: 1, offset: 7n, key: Buffer.from('k'), value: bytes };
  return parseRecord(TOPICS, record);
}

const deposit = {
  transferId: 't-1',
  type: 'deposit',
  accountId: 'a',
  amount: '10.50',
  currency: 'EUR',
  requestedAt: AT,
  completedAt: AT,
};

describe('parseRecord', () => {
  it('should build a COMPLETED row when a completed deposit is well formed', () => {
    const row = parse('completed', deposit);

    expect(row).toMatchObject({
      kind: 'outcome',
      row: {
        transferId: 't-1',
        status: 'COMPLETED',
        accountId: 'a',
        fromAccount: null,
        amount: '10.50',
        completedAt: AT,
      },
    });
  });

  it('should fill from and to when the outcome is a transfer', () => {
    const row = parse('completed', { ...deposit, type: 'transfer', accountId: undefined, from: 'a', to: 'b' });

    expect(row).toMatchObject({ kind: 'outcome', row: { accountId: null, fromAccount: 'a', toAccount: 'b' } });
  });

  it.each([
    ['amount is a JSON number', { amount: 10.5 }],
    ['amount has five fraction digits', { amount: '1.00001' }],
    ['amount is zero', { amount: '0.00' }],
    ['amount is negative', { amount: '-1.00' }],
    ['currency is lower case', { currency: 'eur' }],
    ['completedAt is missing', { completedAt: undefined }],
    ['type is unknown', { type: 'gift' }],
    ['a string holds a NUL', { reference: 'a\u0000b' }],
    ['a string holds a lone surrogate', { reference: '\ud800' }],
  ])('should reject a completed outcome when %s', (_why, change) => {
    expect(parse('completed', { ...deposit, ...change }).kind).toBe('reject');
  });

  it('should reject with the reason when the value is not JSON', () => {
    expect(parse('completed', 'not json')).toMatchObject({
      kind: 'reject',
      row: { error: expect.stringContaining('not JSON') },
    });
  });

  it('should keep only storable fields when a failure is malformed', () => {
    const row = parse('failed', {
      transferId: 't-2',
      type: 'withdrawal',
      amount: 'abc',
      currency: 'eu',
      code: 'malformed',
      reason: 'bad',
      completedAt: AT,
    });

    expect(row).toMatchObject({
      kind: 'outcome',
      row: {
        status: 'FAILED',
        failureCode: 'malformed',
        amount: null,
        currency: null,
        type: 'withdrawal',
        requestedAt: null,
      },
    });
  });

  it('should keep a non-positive amount when a failure is invalid_amount', () => {
    const row = parse('failed', { ...deposit, amount: '-5.00', code: 'invalid_amount', reason: 'negative' });

    expect(row).toMatchObject({ kind: 'outcome', row: { amount: '-5.00', failureCode: 'invalid_amount' } });
  });

  it('should carry owner, currency and overdraft when the audit event is account_opened', () => {
    const row = parse('audit', {
      event: 'account_opened',
      accountId: 'a',
      ownerId: 'u',
      currency: 'JPY',
      overdraftLimit: '0',
      at: AT,
    });

    expect(row).toMatchObject({
      kind: 'audit',
      row: { event: 'account_opened', ownerId: 'u', currency: 'JPY', overdraftLimit: '0' },
    });
  });

  it('should reject account_opened when ownerId is missing', () => {
    expect(parse('audit', { event: 'account_opened', accountId: 'a', currency: 'EUR', at: AT }).kind).toBe('reject');
  });

  it('should keep other audit events as they are when they carry event and at', () => {
    expect(
      parse('audit', { event: 'transfer_failed', transferId: 't', code: 'insufficient_funds', at: AT }),
    ).toMatchObject({ kind: 'audit', row: { code: 'insufficient_funds', ownerId: null } });
  });
});

describe('parseRecord and the ledger', () => {
  const at = (offset: bigint, value: unknown): SinkRow =>
    parseRecord(TOPICS, {
      topic: 'completed',
      partition: 2,
      offset,
      key: Buffer.from('t-1'),
      value: Buffer.from(JSON.stringify(value)),
    });

  it('should build two rows with their own positions and accounts when two outcomes share a transferId', () => {
    const first = at(3n, deposit);
    const second = at(9n, { ...deposit, accountId: 'b' });

    expect(first).toMatchObject({
      kind: 'outcome',
      row: { transferId: 't-1', accountId: 'a', source: { topic: 'completed', partition: 2, offset: 3n } },
    });
    expect(second).toMatchObject({
      kind: 'outcome',
      row: { transferId: 't-1', accountId: 'b', source: { topic: 'completed', partition: 2, offset: 9n } },
    });
  });

  it.each([
    ['reference', { reference: 'a\u0000b' }, 'reference holds a NUL character'],
    ['a nested field', { meta: { note: ['ok', '\ud800'] } }, 'meta.note[1] holds a lone surrogate'],
    ['a key', { ['bad\u0000key']: 'x' }, 'a key of the value holds a NUL character'],
  ])('should name the place when %s cannot be stored', (_where, change, message) => {
    expect(parse('completed', { ...deposit, ...change })).toMatchObject({
      kind: 'reject',
      row: { error: expect.stringContaining(message) },
    });
  });

  it('should keep the reject message storable when the bad input it quotes holds a NUL or a lone surrogate', () => {
    const row = parse('completed', '{"a":\u0000\ud800');

    expect(row.kind).toBe('reject');
    const error = (row as { row: { error: string } }).row.error;
    expect(error.includes('\u0000')).toBe(false);
    expect(error.isWellFormed()).toBe(true);
  });

  it('should never throw and only hand Postgres storable text when the value is arbitrary', () => {
    const text = fc.string({ unit: 'binary', maxLength: 12 });
    const field = fc.oneof(
      text,
      fc.constantFrom('t-1', 'a', 'deposit', 'transfer', 'EUR', '1.00', AT),
      fc.integer(),
      fc.constant(null),
    );
    const value = fc.oneof(
      fc.record(
        {
          transferId: field,
          type: field,
          accountId: field,
          from: field,
          to: field,
          amount: field,
          currency: field,
          reference: field,
          code: field,
          reason: field,
          requestedAt: field,
          completedAt: field,
          event: field,
          at: field,
        },
        { requiredKeys: [] },
      ),
      fc.jsonValue(),
    );
    fc.assert(
      fc.property(fc.constantFrom('completed', 'failed', 'audit'), value, fc.option(text), (topic, json, raw) => {
        const bytes = Buffer.from(raw ?? JSON.stringify(json) ?? 'null');
        const row = parseRecord(TOPICS, { topic, partition: 0, offset: 1n, key: null, value: bytes });
        const strings = Object.values(row.row).filter((v): v is string => typeof v === 'string');
        for (const s of strings) expect(s.includes('\u0000') || !s.isWellFormed(), JSON.stringify(s)).toBe(false);
      }),
      { numRuns: 3000 },
    );
  });

  it('should escape NUL and replace lone surrogates when text is made storable', () => {
    expect(storableText('a\u0000b\ud800')).toBe('a\\u0000b\ufffd');
  });
});

describe('encodeField', () => {
  it('should escape what the COPY text format reserves when a string holds it', () => {
    expect(encodeField('a\\b\tc\nd\re')).toBe('a\\\\b\\tc\\nd\\re');
  });

  it('should write \\N when the value is null', () => {
    expect(encodeField(null)).toBe('\\N');
    expect(encodeField(12n)).toBe('12');
  });
});
