import { describe, expect, it } from 'vitest';
import { encodeField } from '../../../src/sinks/copy.ts';
import { type SinkRow, type SourceRecord, parseRecord } from '../../../src/sinks/records.ts';

const TOPICS = { completed: 'completed', failed: 'failed', audit: 'audit' };
const AT = '2026-01-02T03:04:05.678Z';

function parse(topic: string, value: unknown): SinkRow {
  const bytes = typeof value === 'string' ? Buffer.from(value) : Buffer.from(JSON.stringify(value));
  const record: SourceRecord = { topic, partition: 1, offset: 7n, key: Buffer.from('k'), value: bytes };
  return parseRecord(TOPICS, record);
}

const deposit = { transferId: 't-1', type: 'deposit', accountId: 'a', amount: '10.50', currency: 'EUR', requestedAt: AT, completedAt: AT };

describe('parseRecord', () => {
  it('should build a COMPLETED row when a completed deposit is well formed', () => {
    const row = parse('completed', deposit);

    expect(row).toMatchObject({ kind: 'outcome', row: { transferId: 't-1', status: 'COMPLETED', accountId: 'a', fromAccount: null, amount: '10.50', completedAt: AT } });
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
    expect(parse('completed', 'not json')).toMatchObject({ kind: 'reject', row: { error: expect.stringContaining('not JSON') } });
  });

  it('should keep only storable fields when a failure is malformed', () => {
    const row = parse('failed', { transferId: 't-2', type: 'withdrawal', amount: 'abc', currency: 'eu', code: 'malformed', reason: 'bad', completedAt: AT });

    expect(row).toMatchObject({ kind: 'outcome', row: { status: 'FAILED', failureCode: 'malformed', amount: null, currency: null, type: 'withdrawal', requestedAt: null } });
  });

  it('should keep a non-positive amount when a failure is invalid_amount', () => {
    const row = parse('failed', { ...deposit, amount: '-5.00', code: 'invalid_amount', reason: 'negative' });

    expect(row).toMatchObject({ kind: 'outcome', row: { amount: '-5.00', failureCode: 'invalid_amount' } });
  });

  it('should carry owner, currency and overdraft when the audit event is account_opened', () => {
    const row = parse('audit', { event: 'account_opened', accountId: 'a', ownerId: 'u', currency: 'JPY', overdraftLimit: '0', at: AT });

    expect(row).toMatchObject({ kind: 'audit', row: { event: 'account_opened', ownerId: 'u', currency: 'JPY', overdraftLimit: '0' } });
  });

  it('should reject account_opened when ownerId is missing', () => {
    expect(parse('audit', { event: 'account_opened', accountId: 'a', currency: 'EUR', at: AT }).kind).toBe('reject');
  });

  it('should keep other audit events as they are when they carry event and at', () => {
    expect(parse('audit', { event: 'transfer_failed', transferId: 't', code: 'insufficient_funds', at: AT })).toMatchObject({ kind: 'audit', row: { code: 'insufficient_funds', ownerId: null } });
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
