import { describe, expect, test } from 'vitest';
import { parseCommand, type ParsedCommand } from '../../../src/bank/commands.ts';
import { parseIsoTimestamp } from '../../../src/bank/input-rules.ts';

const TS = Date.UTC(2026, 2, 1, 12, 0, 0);
const TS_ISO = '2026-03-01T12:00:00.000Z';

function parse(value: unknown, key: string | null = 'acc-1'): ParsedCommand {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(JSON.stringify(value), 'utf8');
  return parseCommand(key, bytes, TS);
}

const deposit = { type: 'deposit', transferId: 't-1', accountId: 'acc-1', amount: '100.00', currency: 'EUR' };
const transfer = {
  type: 'transfer',
  transferId: 't-3',
  from: 'acc-1',
  to: 'acc-2',
  amount: '12.50',
  currency: 'EUR',
  reference: 'rent',
};
const open = { type: 'open_account', accountId: 'acc-1', ownerId: 'user-1', currency: 'EUR', overdraftLimit: '50.00' };

function expectKind<K extends ParsedCommand['kind']>(
  parsed: ParsedCommand,
  kind: K,
): Extract<ParsedCommand, { kind: K }> {
  expect(
    parsed.kind,
    JSON.stringify(parsed, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)),
  ).toBe(kind);
  return parsed as Extract<ParsedCommand, { kind: K }>;
}

describe('valid commands', () => {
  test('should parse a deposit into minor units when it is valid', () => {
    const { command } = expectKind(parse(deposit), 'command');
    expect(command).toMatchObject({
      type: 'deposit',
      transferId: 't-1',
      accountId: 'acc-1',
      amount: 10000n,
      currency: 'EUR',
      requestedAt: TS_ISO,
    });
  });

  test('should parse a withdrawal when it is valid', () => {
    const { command } = expectKind(parse({ ...deposit, type: 'withdrawal', amount: '0.5' }), 'command');
    expect(command).toMatchObject({ type: 'withdrawal', amount: 50n });
  });

  test('should parse a transfer keyed by from when it is valid', () => {
    const { command } = expectKind(parse(transfer), 'command');
    expect(command).toMatchObject({ type: 'transfer', from: 'acc-1', to: 'acc-2', amount: 1250n, reference: 'rent' });
  });

  test('should parse open_account with its overdraft limit and default it to zero when absent', () => {
    expect(expectKind(parse(open), 'command').command).toMatchObject({
      type: 'open_account',
      ownerId: 'user-1',
      currency: 'EUR',
      overdraftLimit: 5000n,
    });
    const { overdraftLimit: _, ...withoutLimit } = open;
    expect(expectKind(parse(withoutLimit), 'command').command).toMatchObject({ overdraftLimit: 0n });
    expect(expectKind(parse({ ...open, overdraftLimit: '0' }), 'command').command).toMatchObject({
      overdraftLimit: 0n,
    });
  });

  test('should parse close_account when it is valid', () => {
    expect(expectKind(parse({ type: 'close_account', accountId: 'acc-1' }), 'command').command).toEqual({
      type: 'close_account',
      accountId: 'acc-1',
      requestedAt: TS_ISO,
    });
  });

  test('should normalize requestedAt to UTC when it carries an offset', () => {
    const { command } = expectKind(parse({ ...deposit, requestedAt: '2026-03-01T13:30:00.5+01:30' }), 'command');
    expect(command.requestedAt).toBe('2026-03-01T12:00:00.500Z');
  });

  test('should ignore unknown fields when the command is otherwise valid', () => {
    expectKind(parse({ ...deposit, channel: 'mobile' }), 'command');
  });

  test('should give the same fingerprint when only requestedAt differs', () => {
    const a = expectKind(parse(deposit), 'command').command;
    const b = expectKind(parse({ ...deposit, requestedAt: '2020-01-01T00:00:00Z' }), 'command').command;
    expect('fingerprint' in a && 'fingerprint' in b && a.fingerprint === b.fingerprint).toBe(true);
  });

  test('should give different fingerprints when the amount is written differently', () => {
    const a = expectKind(parse(deposit), 'command').command as { fingerprint: string };
    const b = expectKind(parse({ ...deposit, amount: '100' }), 'command').command as { fingerprint: string };
    expect(a.fingerprint).not.toBe(b.fingerprint);
  });
});

describe('dead letters: nothing identifies the command', () => {
  const cases: Array<[string, string | Buffer | null]> = [
    ['value is not JSON', '{"type":'],
    ['value is binary garbage', Buffer.from([0xff, 0x00, 0xfe])],
    ['value is a JSON array', '[1,2]'],
    ['value is a JSON string', '"deposit"'],
    ['value is JSON null', 'null'],
    ['value is a number', '42'],
    ['type is missing', JSON.stringify({ transferId: 't', accountId: 'acc-1' })],
    ['type is unknown', JSON.stringify({ ...deposit, type: 'refund' })],
    ['type is not a string', JSON.stringify({ ...deposit, type: 7 })],
    ['a deposit has no transferId', JSON.stringify({ ...deposit, transferId: undefined })],
    ['a transfer has an empty transferId', JSON.stringify({ ...transfer, transferId: '' })],
    ['a withdrawal has a numeric transferId', JSON.stringify({ ...deposit, type: 'withdrawal', transferId: 12 })],
    ['a transferId is too long', JSON.stringify({ ...deposit, transferId: 'x'.repeat(257) })],
    ['open_account has no accountId', JSON.stringify({ ...open, accountId: undefined })],
    ['close_account has a numeric accountId', JSON.stringify({ type: 'close_account', accountId: 1 })],
  ];
  for (const [when, value] of cases) {
    test(`should dead-letter when ${when}`, () => {
      const bytes = value === null ? null : Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
      const parsed = expectKind(parseCommand('acc-1', bytes, TS), 'dead_letter');
      expect(parsed.error.length).toBeGreaterThan(0);
    });
  }

  test('should dead-letter when the value is null', () => {
    expect(parseCommand('acc-1', null, TS)).toEqual({ kind: 'dead_letter', error: 'record value is null' });
  });
});

describe('money commands with a transferId but bad fields', () => {
  const malformed: Array<[string, Record<string, unknown>, string | null, RegExp]> = [
    ['accountId is missing', { ...deposit, accountId: undefined }, 'acc-1', /accountId/],
    ['accountId is a number', { ...deposit, accountId: 5 }, 'acc-1', /accountId/],
    ['from is missing', { ...transfer, from: undefined }, 'acc-1', /from/],
    ['to is missing', { ...transfer, to: undefined }, 'acc-1', /to must be/],
    ['reference is not a string', { ...transfer, reference: 5 }, 'acc-1', /reference/],
    ['the key is null', deposit, null, /key is null.*"acc-1"/],
    ['the key is another account', deposit, 'acc-9', /"acc-9".*"acc-1"/],
    ['a transfer is keyed by to', transfer, 'acc-2', /"acc-2".*from "acc-1"/],
    ['currency is unknown', { ...deposit, currency: 'XYZ' }, 'acc-1', /currency/],
    ['currency is lower case', { ...deposit, currency: 'eur' }, 'acc-1', /currency/],
    ['currency is missing', { ...deposit, currency: undefined }, 'acc-1', /currency/],
    [
      'amount is a JSON number',
      { ...deposit, amount: 100 },
      'acc-1',
      /amount must be a decimal string, got the JSON number 100/,
    ],
    ['amount is missing', { ...deposit, amount: undefined }, 'acc-1', /amount/],
    ['amount is not a number', { ...deposit, amount: 'ten' }, 'acc-1', /amount/],
    ['amount has an exponent', { ...deposit, amount: '1e3' }, 'acc-1', /amount/],
    ['amount has a plus sign', { ...deposit, amount: '+5.00' }, 'acc-1', /amount/],
    ['amount is an object', { ...deposit, amount: { value: '1' } }, 'acc-1', /amount/],
    ['requestedAt is not a date', { ...deposit, requestedAt: 'yesterday' }, 'acc-1', /requestedAt/],
    ['requestedAt has no time zone', { ...deposit, requestedAt: '2026-03-01T12:00:00' }, 'acc-1', /requestedAt/],
    ['requestedAt is an impossible day', { ...deposit, requestedAt: '2026-02-29T12:00:00Z' }, 'acc-1', /requestedAt/],
    ['requestedAt is a number', { ...deposit, requestedAt: 1700000000000 }, 'acc-1', /requestedAt/],
    [
      'the currency is unknown and the amount negative (malformed wins)',
      { ...deposit, currency: 'ABC', amount: '-1' },
      'acc-1',
      /currency/,
    ],
  ];
  for (const [when, value, key, reason] of malformed) {
    test(`should fail as malformed when ${when}`, () => {
      const parsed = expectKind(parse(value, key), 'money_rejected');
      expect(parsed.code).toBe('malformed');
      expect(parsed.reason).toMatch(reason);
      expect(parsed.fields.transferId).toBe(value['transferId']);
    });
  }

  const invalid: Array<[string, string, string]> = [
    ['the amount is negative', '-5.00', 'negative'],
    ['the amount is zero', '0.00', 'zero'],
    ['the amount has more decimals than the currency', '1.001', 'more than 2 decimals'],
    ['the amount has trailing zero decimals beyond the currency', '1.000', 'more than 2 decimals'],
    ['the amount has more than 18 integer digits', '1000000000000000000', 'too large'],
  ];
  for (const [when, amount, reason] of invalid) {
    test(`should fail as invalid_amount when ${when}`, () => {
      const parsed = expectKind(parse({ ...deposit, amount }), 'money_rejected');
      expect(parsed.code).toBe('invalid_amount');
      expect(parsed.reason).toContain(reason);
      expect(parsed.fields).toMatchObject({
        transferId: 't-1',
        type: 'deposit',
        accountId: 'acc-1',
        currency: 'EUR',
        amount,
      });
    });
  }

  test('should fail as invalid_amount when a JPY amount has a fraction', () => {
    expect(expectKind(parse({ ...deposit, currency: 'JPY', amount: '100.5' }), 'money_rejected').code).toBe(
      'invalid_amount',
    );
  });

  test('should echo only the valid fields and the record time when a command is malformed', () => {
    const parsed = expectKind(parse({ ...transfer, amount: 12.5, requestedAt: 'soon' }), 'money_rejected');
    expect(parsed.fields).toEqual({ transferId: 't-3', type: 'transfer', requestedAt: TS_ISO });
    const later = expectKind(parse({ ...transfer, amount: 12.5 }), 'money_rejected');
    expect(later.fields).toEqual({
      transferId: 't-3',
      type: 'transfer',
      from: 'acc-1',
      to: 'acc-2',
      reference: 'rent',
      currency: 'EUR',
      requestedAt: TS_ISO,
    });
  });

  test('should fingerprint the raw fields when a command is malformed, so a number and a string differ', () => {
    const asNumber = expectKind(parse({ ...deposit, amount: 100 }), 'money_rejected');
    const asString = expectKind(parse({ ...deposit, amount: '100.00' }), 'command').command as { fingerprint: string };
    expect(asNumber.fingerprint).not.toBe(asString.fingerprint);
  });
});

describe('account commands with an accountId but bad fields', () => {
  const cases: Array<[string, Record<string, unknown>, string | null, RegExp]> = [
    ['the key is null', open, null, /key is null/],
    ['the key is another account', open, 'acc-2', /"acc-2".*"acc-1"/],
    ['close_account is keyed by another account', { type: 'close_account', accountId: 'acc-1' }, 'acc-2', /"acc-2"/],
    ['ownerId is missing', { ...open, ownerId: undefined }, 'acc-1', /ownerId/],
    ['currency is unknown', { ...open, currency: 'EURO' }, 'acc-1', /currency/],
    ['overdraftLimit is a JSON number', { ...open, overdraftLimit: 50 }, 'acc-1', /overdraftLimit/],
    ['overdraftLimit is negative', { ...open, overdraftLimit: '-1.00' }, 'acc-1', /overdraftLimit/],
    ['overdraftLimit is over-precise', { ...open, overdraftLimit: '1.005' }, 'acc-1', /overdraftLimit/],
    ['requestedAt is invalid', { ...open, requestedAt: '2026-13-01T00:00:00Z' }, 'acc-1', /requestedAt/],
  ];
  for (const [when, value, key, reason] of cases) {
    test(`should reject as malformed when ${when}`, () => {
      const parsed = expectKind(parse(value, key), 'account_rejected');
      expect(parsed.accountId).toBe('acc-1');
      expect(parsed.reason).toMatch(reason);
    });
  }
});

describe('parseIsoTimestamp', () => {
  test('should read RFC 3339 timestamps when they are valid', () => {
    expect(parseIsoTimestamp('2026-03-01T12:00:00Z')).toBe(TS);
    expect(parseIsoTimestamp('2026-03-01T07:00:00-05:00')).toBe(TS);
    expect(parseIsoTimestamp('2024-02-29T00:00:00Z')).toBe(Date.UTC(2024, 1, 29));
    expect(parseIsoTimestamp('2026-03-01T12:00:00.123456789Z')).toBe(TS + 123);
  });

  test('should refuse timestamps when a field is out of range or the form is loose', () => {
    for (const text of [
      '2026-03-01',
      '2026-03-01 12:00:00Z',
      '2026-03-32T00:00:00Z',
      '2026-03-01T24:00:00Z',
      '2100-02-29T00:00:00Z',
      '0099-01-01T00:00:00Z',
      '2026-03-01T12:00:00+25:00',
      '2026-3-1T12:00:00Z',
    ]) {
      expect(parseIsoTimestamp(text), text).toBeUndefined();
    }
  });
});

describe('input rules (issue 14: what every later stage can carry)', () => {
  test('should dead-letter a money command when its transferId holds a lone surrogate, a control or a format character', () => {
    for (const transferId of [
      't-\ud800',
      '\udc00',
      't-\u0000',
      't-\u001b',
      't-\u0085',
      't-\u202e',
      't-\u200b',
      '\ufefft',
      't-\u2028',
    ]) {
      expectKind(parse({ ...deposit, transferId }), 'dead_letter');
    }
  });

  test('should accept ids with non-ASCII letters, symbols and astral characters when they are well-formed', () => {
    const { command } = expectKind(
      parse({ ...deposit, transferId: 'tх-😀-é-中-\ufffd', accountId: 'kønto' }, 'kønto'),
      'command',
    );
    expect(command).toMatchObject({ transferId: 'tх-😀-é-中-\ufffd' });
  });

  test('should answer malformed when an account id, the owner or the reference is not storable', () => {
    expect(expectKind(parse({ ...deposit, accountId: 'acc-\ud800' }, 'acc-\ud800'), 'money_rejected').code).toBe(
      'malformed',
    );
    for (const reference of ['rent\u0000', 'rent\ud800', 'line\nbreak', 'tab\there', '\u009b']) {
      const rejected = expectKind(parse({ ...transfer, reference }), 'money_rejected');
      expect(rejected.fields.reference).toBeUndefined();
      expect(rejected.reason).toMatch(/reference/);
    }
    expectKind(parse({ ...open, ownerId: 'user\u0000' }), 'account_rejected');
    expectKind(parse({ ...open, accountId: 'acc\u0000' }, 'acc\u0000'), 'dead_letter');
  });

  test('should keep bidi and zero-width characters in a reference, since right-to-left text needs them', () => {
    const { command } = expectKind(parse({ ...transfer, reference: '\u200fשכר דירה\u200e 2026' }), 'command');
    expect(command).toMatchObject({ reference: '\u200fשכר דירה\u200e 2026' });
  });

  test('should answer malformed when the key bytes are not valid UTF-8 even if they decode to the account id', () => {
    // [0x61, 0xff] decodes with replacement to "a\ufffd", but hashes to another partition than "a\ufffd" does.
    const rejected = expectKind(
      parseCommand(Buffer.from([0x61, 0xff]), Buffer.from(JSON.stringify({ ...deposit, accountId: 'a\ufffd' })), TS),
      'money_rejected',
    );
    expect(rejected.reason).toMatch(/not valid UTF-8/);
    expectKind(parseCommand(Buffer.from('acc-1'), Buffer.from(JSON.stringify(deposit)), TS), 'command');
  });

  test('should describe a huge key by its size instead of quoting it', () => {
    const rejected = expectKind(parse(deposit, 'k'.repeat(100_000)), 'money_rejected');
    expect(rejected.reason.length).toBeLessThan(200);
  });

  test('should dead-letter a value that is not valid UTF-8 or starts with a BOM', () => {
    const json = Buffer.from(JSON.stringify(deposit));
    expect(
      expectKind(
        parseCommand(
          'acc-1',
          Buffer.concat([json.subarray(0, 5), Buffer.from([0xed, 0xa0, 0x80]), json.subarray(5)]),
          TS,
        ),
        'dead_letter',
      ).error,
    ).toMatch(/UTF-8/);
    expectKind(parseCommand('acc-1', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json]), TS), 'dead_letter');
  });

  test('should take the last of duplicate keys and ignore a __proto__ member', () => {
    const text =
      '{"__proto__":{"amount":"999.00"},"type":"deposit","transferId":"t-0","transferId":"t-1","accountId":"acc-1","amount":"1.00","currency":"EUR"}';
    const { command } = expectKind(parse(text), 'command');
    expect(command).toMatchObject({ transferId: 't-1', amount: 100n });
  });

  test('should refuse a requestedAt whose instant leaves years 1000 to 9999 once its offset is applied', () => {
    expect(expectKind(parse({ ...deposit, requestedAt: '9999-12-31T23:59:59-23:59' }), 'money_rejected').code).toBe(
      'malformed',
    );
    expect(expectKind(parse({ ...deposit, requestedAt: '1000-01-01T00:00:00+00:01' }), 'money_rejected').code).toBe(
      'malformed',
    );
    expectKind(parse({ ...deposit, requestedAt: '9999-12-31T23:59:59Z' }), 'command');
    for (const text of ['+275760-09-13T00:00:00Z', '-000001-01-01T00:00:00Z'])
      expect(parseIsoTimestamp(text), text).toBeUndefined();
  });
});
