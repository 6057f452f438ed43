import { beforeEach, describe, expect, test } from 'vitest';
import { dedupKey } from '../../../src/bank/stores.ts';
import { accountIds, Bank, crossTaskPair, DAY_MS, sameTaskPair, START_MS, TOPICS } from './harness.ts';

const ISO_START = new Date(START_MS).toISOString();

let bank: Bank;
beforeEach(() => {
  bank = new Bank();
});

async function funded(accountId: string, amount: string, currency = 'EUR', overdraftLimit?: string): Promise<void> {
  await bank.open(accountId, currency, overdraftLimit);
  if (amount !== '0') await bank.deposit(`fund-${accountId}`, accountId, amount, currency);
  bank.clear();
}

describe('accounts', () => {
  test('should open an account and audit it with owner, currency and overdraft when it is new', async () => {
    await bank.send({
      type: 'open_account',
      accountId: 'acc-1',
      ownerId: 'user-1',
      currency: 'EUR',
      overdraftLimit: '50.5',
    });
    expect(bank.audit()).toEqual([
      {
        key: 'acc-1',
        value: {
          event: 'account_opened',
          accountId: 'acc-1',
          ownerId: 'user-1',
          currency: 'EUR',
          overdraftLimit: '50.50',
          at: ISO_START,
        },
      },
    ]);
    const accounts = await bank.driver.storeEntries('accounts');
    expect(accounts.get('acc-1')).toEqual({
      ownerId: 'user-1',
      currency: 'EUR',
      overdraftLimit: '5050',
      status: 'open',
      openedAt: ISO_START,
    });
    expect(await bank.balance('acc-1')).toEqual({ balance: '0', inFlight: '0' });
  });

  test('should reject with account_exists when the account is opened twice', async () => {
    await bank.open('acc-1');
    await bank.open('acc-1', 'USD');
    expect(bank.audit().map((r) => r.value)).toEqual([
      expect.objectContaining({ event: 'account_opened' }),
      expect.objectContaining({ event: 'account_command_rejected', accountId: 'acc-1', code: 'account_exists' }),
    ]);
    expect((await bank.driver.storeEntries<{ currency: string }>('accounts')).get('acc-1')?.currency).toBe('EUR');
  });

  test('should reject with malformed when an account command has bad fields', async () => {
    await bank.send({
      type: 'open_account',
      accountId: 'acc-1',
      ownerId: 'user-1',
      currency: 'EUR',
      overdraftLimit: 10,
    });
    const [rejected] = bank.audit();
    expect(rejected?.value).toMatchObject({ event: 'account_command_rejected', accountId: 'acc-1', code: 'malformed' });
    expect(rejected?.value['reason']).toMatch(/overdraftLimit/);
    expect((await bank.driver.storeEntries('accounts')).size).toBe(0);
  });

  test('should close an account and read it as closed with balance 0.00 when its balance is zero', async () => {
    await funded('acc-1', '10');
    await bank.send({ type: 'withdrawal', transferId: 'w', accountId: 'acc-1', amount: '10', currency: 'EUR' });
    await bank.send({ type: 'close_account', accountId: 'acc-1' });
    expect(bank.audit().map((r) => r.value['event'])).toEqual(['transfer_completed', 'account_closed']);
    const account = (await bank.driver.storeEntries<{ status: string }>('accounts')).get('acc-1');
    expect(account?.status).toBe('closed');
    expect(await bank.balance('acc-1')).toEqual({ balance: '0', inFlight: '0' });
  });

  test('should reject with balance_not_zero when the account holds money', async () => {
    await funded('acc-1', '0.01');
    await bank.send({ type: 'close_account', accountId: 'acc-1' });
    expect(bank.audit()[0]?.value).toMatchObject({ event: 'account_command_rejected', code: 'balance_not_zero' });
    expect(bank.audit()).toEqual([]);
  });

  test('should reject with balance_not_zero when the account is overdrawn', async () => {
    await funded('acc-1', '0', 'EUR', '5');
    await bank.send({ type: 'withdrawal', transferId: 'w', accountId: 'acc-1', amount: '1', currency: 'EUR' });
    bank.clear();
    await bank.send({ type: 'close_account', accountId: 'acc-1' });
    expect(bank.audit()[0]?.value).toMatchObject({ code: 'balance_not_zero' });
  });

  test('should reject with account_not_found when closing an unknown account', async () => {
    await bank.send({ type: 'close_account', accountId: 'nobody' });
    expect(bank.audit()[0]?.value).toMatchObject({
      event: 'account_command_rejected',
      accountId: 'nobody',
      code: 'account_not_found',
    });
  });

  test('should reject with account_closed when closing an account twice', async () => {
    await bank.open('acc-1');
    await bank.send({ type: 'close_account', accountId: 'acc-1' });
    await bank.send({ type: 'close_account', accountId: 'acc-1' });
    expect(bank.audit().map((r) => r.value['code'] ?? r.value['event'])).toEqual([
      'account_opened',
      'account_closed',
      'account_closed',
    ]);
    await bank.open('acc-1');
    expect(bank.audit()[0]?.value).toMatchObject({ code: 'account_exists' });
  });
});

describe('deposits and withdrawals', () => {
  test('should complete a deposit with the amount in currency digits and the record time when requestedAt is absent', async () => {
    await bank.open('acc-1');
    const requestedMs = START_MS - 5_000;
    await bank.send(
      { type: 'deposit', transferId: 't-1', accountId: 'acc-1', amount: '100', currency: 'EUR' },
      { timestamp: requestedMs },
    );
    expect(bank.completed()).toEqual([
      {
        key: 't-1',
        value: {
          transferId: 't-1',
          type: 'deposit',
          accountId: 'acc-1',
          amount: '100.00',
          currency: 'EUR',
          requestedAt: new Date(requestedMs).toISOString(),
          completedAt: ISO_START,
        },
      },
    ]);
    expect(await bank.balance('acc-1')).toEqual({ balance: '10000', inFlight: '0' });
  });

  test('should carry requestedAt and the decision time when both are known', async () => {
    await bank.open('acc-1', 'JPY');
    await bank.driver.advanceWallClockTime(1_000);
    await bank.send({
      type: 'deposit',
      transferId: 't-1',
      accountId: 'acc-1',
      amount: '500',
      currency: 'JPY',
      requestedAt: '2025-12-31T23:00:00+01:00',
    });
    expect(bank.completed()[0]?.value).toMatchObject({
      amount: '500',
      requestedAt: '2025-12-31T22:00:00.000Z',
      completedAt: new Date(START_MS + 1_000).toISOString(),
    });
  });

  test('should complete a withdrawal down to minus the overdraft limit and refuse one minor unit more', async () => {
    await funded('acc-1', '10', 'EUR', '5');
    await bank.send({ type: 'withdrawal', transferId: 'w-1', accountId: 'acc-1', amount: '15.00', currency: 'EUR' });
    await bank.send({ type: 'withdrawal', transferId: 'w-2', accountId: 'acc-1', amount: '0.01', currency: 'EUR' });
    expect(bank.completed().map((r) => r.key)).toEqual(['w-1']);
    expect(bank.failed().map((r) => [r.key, r.value['code']])).toEqual([['w-2', 'insufficient_funds']]);
    expect(await bank.balance('acc-1')).toEqual({ balance: '-500', inFlight: '0' });
  });

  test('should fail with account_not_found, account_closed or currency_mismatch when the account cannot take it', async () => {
    await bank.open('closed');
    await bank.send({ type: 'close_account', accountId: 'closed' });
    await bank.open('usd', 'USD');
    await bank.deposit('d-1', 'nobody', '1');
    await bank.deposit('d-2', 'closed', '1');
    await bank.deposit('d-3', 'usd', '1');
    await bank.send({ type: 'withdrawal', transferId: 'd-4', accountId: 'usd', amount: '1', currency: 'EUR' });
    const failed = bank.failed();
    expect(failed.map((r) => [r.key, r.value['code']])).toEqual([
      ['d-1', 'account_not_found'],
      ['d-2', 'account_closed'],
      ['d-3', 'currency_mismatch'],
      ['d-4', 'currency_mismatch'],
    ]);
    expect(failed[0]?.value).toEqual({
      transferId: 'd-1',
      type: 'deposit',
      accountId: 'nobody',
      amount: '1.00',
      currency: 'EUR',
      requestedAt: ISO_START,
      completedAt: ISO_START,
      code: 'account_not_found',
      reason: 'account nobody does not exist',
    });
    expect(bank.audit().filter((r) => r.value['event'] === 'transfer_failed')).toHaveLength(4);
  });

  test('should fail with invalid_amount when the amount is zero, negative, over-precise or too large', async () => {
    await bank.open('acc-1');
    const amounts = ['0', '-1.00', '1.001', '1234567890123456789'];
    for (const [i, amount] of amounts.entries()) await bank.deposit(`bad-${i}`, 'acc-1', amount);
    const failed = bank.failed();
    expect(failed.map((r) => r.value['code'])).toEqual([
      'invalid_amount',
      'invalid_amount',
      'invalid_amount',
      'invalid_amount',
    ]);
    expect(failed.map((r) => r.value['amount'])).toEqual(amounts);
    expect(await bank.balance('acc-1')).toEqual({ balance: '0', inFlight: '0' });
  });

  test('should fail with malformed when the amount is a JSON number or the currency unknown', async () => {
    await bank.open('acc-1');
    await bank.send({ type: 'deposit', transferId: 'n', accountId: 'acc-1', amount: 100, currency: 'EUR' });
    await bank.send({ type: 'deposit', transferId: 'c', accountId: 'acc-1', amount: '1', currency: 'EUX' });
    const failed = bank.failed();
    expect(failed.map((r) => [r.key, r.value['code']])).toEqual([
      ['n', 'malformed'],
      ['c', 'malformed'],
    ]);
    expect(failed[0]?.value).not.toHaveProperty('amount');
    expect(await bank.balance('acc-1')).toEqual({ balance: '0', inFlight: '0' });
  });

  test('should fail with malformed naming both when the key is another account', async () => {
    const [a, b] = crossTaskPair(bank.driver, 'key');
    await funded(a, '10');
    await bank.send({ type: 'withdrawal', transferId: 'k-1', accountId: a, amount: '1', currency: 'EUR' }, { key: b });
    await bank.send(
      { type: 'withdrawal', transferId: 'k-2', accountId: a, amount: '1', currency: 'EUR' },
      { key: null },
    );
    const failed = bank.failed();
    expect(failed.map((r) => r.value['code'])).toEqual(['malformed', 'malformed']);
    expect(failed[0]?.value['reason']).toBe(`record key "${b}" differs from accountId "${a}"`);
    expect(failed[1]?.value['reason']).toMatch(/key is null/);
    expect(await bank.balance(a)).toEqual({ balance: '1000', inFlight: '0' });
  });
});

describe('transfers', () => {
  test('should move the money at once with no leg when both accounts are in one task', async () => {
    const [a, b] = sameTaskPair(bank.driver, 'same');
    await funded(a, '100');
    await funded(b, '0');
    await bank.send({
      type: 'transfer',
      transferId: 'x-1',
      from: a,
      to: b,
      amount: '12.50',
      currency: 'EUR',
      reference: 'rent',
    });
    expect(bank.completed()).toEqual([
      {
        key: 'x-1',
        value: {
          transferId: 'x-1',
          type: 'transfer',
          from: a,
          to: b,
          amount: '12.50',
          currency: 'EUR',
          reference: 'rent',
          requestedAt: ISO_START,
          completedAt: ISO_START,
        },
      },
    ]);
    expect(bank.driver.records(TOPICS.credits)).toHaveLength(0);
    expect(await bank.balance(a)).toEqual({ balance: '8750', inFlight: '0' });
    expect(await bank.balance(b)).toEqual({ balance: '1250', inFlight: '0' });
  });

  test('should credit, complete and settle in two legs when the accounts are in different tasks', async () => {
    const [a, b] = crossTaskPair(bank.driver, 'cross');
    await funded(a, '100');
    await funded(b, '0');
    await bank.send({ type: 'transfer', transferId: 'x-1', from: a, to: b, amount: '40', currency: 'EUR' });
    expect(bank.completed()).toEqual([
      {
        key: 'x-1',
        value: {
          transferId: 'x-1',
          type: 'transfer',
          from: a,
          to: b,
          amount: '40.00',
          currency: 'EUR',
          requestedAt: ISO_START,
          completedAt: ISO_START,
        },
      },
    ]);
    const legs = bank.driver
      .records(TOPICS.credits)
      .map((r) => [r.key?.toString(), JSON.parse(r.value!.toString()).leg, r.partition]);
    expect(legs).toEqual([
      [b, 'credit', bank.driver.partitionOf(b)],
      [a, 'settle', bank.driver.partitionOf(a)],
    ]);
    expect(await bank.balance(a)).toEqual({ balance: '6000', inFlight: '0' });
    expect(await bank.balance(b)).toEqual({ balance: '4000', inFlight: '0' });
    expect((await bank.dedupEntries<{ status: string }>()).get(dedupKey(a, 'x-1'))?.status).toBe('completed');
    expect(bank.failed()).toEqual([]);
  });

  test('should refund the from account and fail with the code when the to task refuses the credit', async () => {
    const [a] = accountIds(bank.driver, 'ref-from', 1, () => true) as [string];
    const [missing, closed, usd] = accountIds(bank.driver, 'ref-to', 3, (p) => p !== bank.driver.partitionOf(a)) as [
      string,
      string,
      string,
    ];
    await funded(a, '100');
    await bank.open(closed);
    await bank.send({ type: 'close_account', accountId: closed });
    await bank.open(usd, 'USD');
    bank.clear();
    const cases: Array<[string, string]> = [
      [missing, 'account_not_found'],
      [closed, 'account_closed'],
      [usd, 'currency_mismatch'],
    ];
    for (const [i, [to]] of cases.entries())
      await bank.send({ type: 'transfer', transferId: `r-${i}`, from: a, to, amount: '10', currency: 'EUR' });
    const failed = bank.failed();
    expect(failed.map((r) => [r.key, r.value['code']])).toEqual(cases.map(([, code], i) => [`r-${i}`, code]));
    expect(failed[0]?.value).toMatchObject({
      transferId: 'r-0',
      type: 'transfer',
      from: a,
      to: missing,
      amount: '10.00',
      currency: 'EUR',
      requestedAt: ISO_START,
    });
    const refunded = bank.audit().filter((r) => r.value['event'] === 'transfer_refunded');
    expect(refunded.map((r) => r.value)).toEqual(
      cases.map(([, code], i) => ({
        event: 'transfer_refunded',
        accountId: a,
        transferId: `r-${i}`,
        code,
        at: ISO_START,
      })),
    );
    expect(await bank.balance(a)).toEqual({ balance: '10000', inFlight: '0' });
    expect(bank.completed()).toEqual([]);
  });

  test('should fail without moving money when the local to account cannot take it', async () => {
    const [a, b] = sameTaskPair(bank.driver, 'loc');
    await funded(a, '100');
    await bank.send({ type: 'transfer', transferId: 'l-1', from: a, to: b, amount: '1', currency: 'EUR' });
    expect(bank.failed().map((r) => r.value['code'])).toEqual(['account_not_found']);
    expect(bank.driver.records(TOPICS.credits)).toHaveLength(0);
    expect(await bank.balance(a)).toEqual({ balance: '10000', inFlight: '0' });
  });

  test('should fail with same_account, account_not_found, account_closed, currency_mismatch or insufficient_funds when the from side is wrong', async () => {
    const [a, b] = crossTaskPair(bank.driver, 'from');
    await funded(a, '5');
    await funded(b, '0');
    await bank.open('from-closed');
    await bank.send({ type: 'close_account', accountId: 'from-closed' });
    bank.clear();
    await bank.send({ type: 'transfer', transferId: 'f-1', from: a, to: a, amount: '1', currency: 'EUR' });
    await bank.send({ type: 'transfer', transferId: 'f-2', from: 'from-none', to: b, amount: '1', currency: 'EUR' });
    await bank.send({ type: 'transfer', transferId: 'f-3', from: 'from-closed', to: b, amount: '1', currency: 'EUR' });
    await bank.send({ type: 'transfer', transferId: 'f-4', from: a, to: b, amount: '1', currency: 'USD' });
    await bank.send({ type: 'transfer', transferId: 'f-5', from: a, to: b, amount: '5.01', currency: 'EUR' });
    expect(bank.failed().map((r) => r.value['code'])).toEqual([
      'same_account',
      'account_not_found',
      'account_closed',
      'currency_mismatch',
      'insufficient_funds',
    ]);
    expect(bank.driver.records(TOPICS.credits)).toHaveLength(0);
    expect(await bank.balance(a)).toEqual({ balance: '500', inFlight: '0' });
  });
});

describe('idempotency', () => {
  test('should answer nothing when an exact duplicate follows a success or a failure', async () => {
    const [a, b] = crossTaskPair(bank.driver, 'dup');
    await funded(a, '100');
    await funded(b, '0');
    const transfer = { type: 'transfer', transferId: 'd-1', from: a, to: b, amount: '10', currency: 'EUR' };
    const failing = { type: 'withdrawal', transferId: 'd-2', accountId: a, amount: '1000', currency: 'EUR' };
    await bank.send(transfer);
    await bank.send(failing);
    bank.clear();
    const balances = await bank.balances();
    await bank.send({ ...transfer, requestedAt: '2030-01-01T00:00:00Z' });
    await bank.send(failing);
    expect([bank.completed(), bank.failed(), bank.audit(), bank.dlq()]).toEqual([[], [], [], []]);
    expect(await bank.balances()).toEqual(balances);
  });

  test('should answer nothing when a malformed command is sent twice', async () => {
    await bank.open('acc-1');
    await bank.deposit('m-1', 'acc-1', 'lots');
    await bank.deposit('m-1', 'acc-1', 'lots');
    expect(bank.failed().map((r) => r.value['code'])).toEqual(['malformed']);
  });

  test('should fail once with idempotency_conflict and keep the original when a different command reuses the transferId', async () => {
    await funded('acc-1', '100');
    await bank.deposit('c-1', 'acc-1', '10');
    bank.clear();
    const conflicting = { type: 'withdrawal', transferId: 'c-1', accountId: 'acc-1', amount: '10', currency: 'EUR' };
    await bank.send(conflicting);
    expect(bank.failed()).toEqual([
      {
        key: 'c-1',
        value: expect.objectContaining({
          transferId: 'c-1',
          type: 'withdrawal',
          accountId: 'acc-1',
          amount: '10.00',
          code: 'idempotency_conflict',
        }),
      },
    ]);
    expect(bank.audit().map((r) => r.value)).toEqual([
      expect.objectContaining({ event: 'transfer_failed', transferId: 'c-1', code: 'idempotency_conflict' }),
    ]);
    await bank.send(conflicting);
    await bank.deposit('c-1', 'acc-1', '10');
    expect([bank.completed(), bank.failed()]).toEqual([[], []]);
    await bank.deposit('c-1', 'acc-1', '11');
    expect(bank.failed().map((r) => r.value['code'])).toEqual(['idempotency_conflict']);
    expect(await bank.balance('acc-1')).toEqual({ balance: '11000', inFlight: '0' });
    expect((await bank.dedupEntries<{ status: string }>()).get(dedupKey('acc-1', 'c-1'))).toMatchObject({
      status: 'completed',
    });
  });

  test('should decide each command when one transferId is used on three accounts of the same task, the scope being the acted-on account', async () => {
    const [a, b, c] = accountIds(
      bank.driver,
      'scope',
      3,
      (p, chosen) => chosen.length === 0 || bank.driver.partitionOf(chosen[0]!) === p,
    ) as [string, string, string];
    await funded(a, '100');
    await funded(b, '0');
    await funded(c, '50');
    await bank.deposit('s-1', a, '10');
    await bank.deposit('s-1', b, '20');
    await bank.send({ type: 'transfer', transferId: 's-1', from: c, to: a, amount: '5', currency: 'EUR' });
    expect(bank.completed().map((r) => [r.value['type'], r.value['accountId'] ?? r.value['from']])).toEqual([
      ['deposit', a],
      ['deposit', b],
      ['transfer', c],
    ]);
    expect(bank.failed()).toEqual([]);
    // Within one account the rules are unchanged: b's deposit again is silent, a's other use of s-1 conflicts.
    bank.clear();
    await bank.deposit('s-1', b, '20');
    expect(bank.completed()).toEqual([]);
    await bank.send({ type: 'transfer', transferId: 's-1', from: a, to: b, amount: '1', currency: 'EUR' });
    expect(bank.failed().map((r) => [r.value['from'], r.value['code']])).toEqual([[a, 'idempotency_conflict']]);
    expect(await bank.balance(a)).toEqual({ balance: '11500', inFlight: '0' });
    expect(await bank.balance(b)).toEqual({ balance: '2000', inFlight: '0' });
    expect(await bank.balance(c)).toEqual({ balance: '4500', inFlight: '0' });
  });

  test('should complete a command first rejected as malformed under another key when it is resent on its own key', async () => {
    const [a, b] = sameTaskPair(bank.driver, 'rekey');
    await funded(a, '0');
    await funded(b, '0');
    const deposit = { type: 'deposit', transferId: 'k-1', accountId: b, amount: '3', currency: 'EUR' };
    await bank.send(deposit, { key: a });
    expect(bank.failed().map((r) => r.value['code'])).toEqual(['malformed']);
    await bank.send(deposit);
    expect(bank.completed().map((r) => r.key)).toEqual(['k-1']);
    expect(await bank.balance(b)).toEqual({ balance: '300', inFlight: '0' });
  });
});

describe('dead letters', () => {
  test('should dead-letter the original bytes with the error and source in headers when the value is not a command', async () => {
    const value = Buffer.from('{"type":"deposit",', 'utf8');
    await bank.sendRaw('acc-1', value, { headers: { trace: Buffer.from('abc') } });
    await bank.sendRaw('acc-1', Buffer.from('{"type":"teleport"}'));
    await bank.sendRaw('acc-1', null);
    const dlq = bank.dlq();
    expect(dlq).toHaveLength(3);
    const [first] = dlq;
    expect(first?.key).toEqual(Buffer.from('acc-1'));
    expect(first?.value).toEqual(value);
    expect(first?.partition).toBe(bank.driver.partitionOf('acc-1'));
    const header = (name: string) => first?.headers[name]?.toString('utf8');
    expect(header('bankstream.error')).toMatch(/not JSON/);
    expect(header('bankstream.source.topic')).toBe(TOPICS.input);
    expect(header('bankstream.source.partition')).toBe(String(bank.driver.partitionOf('acc-1')));
    expect(header('bankstream.source.offset')).toBe('0');
    expect(header('trace')).toBe('abc');
    expect(dlq[1]?.headers['bankstream.error']?.toString()).toBe('unknown command type "teleport"');
    expect(dlq[1]?.headers['bankstream.source.offset']?.toString()).toBe('1');
    expect(dlq[2]?.value).toBeNull();
    expect([bank.completed(), bank.failed(), bank.audit()]).toEqual([[], [], []]);
  });

  test('should dead-letter a money command when it has no usable transferId', async () => {
    await bank.send({ type: 'deposit', accountId: 'acc-1', amount: '1', currency: 'EUR' });
    expect(bank.dlq()[0]?.headers['bankstream.error']?.toString()).toMatch(/transferId/);
    expect(bank.failed()).toEqual([]);
  });

  test('should dead-letter a leg and go on when a leg on the credits topic is malformed or matches nothing', async () => {
    const partition = bank.driver.partitionOf('acc-1');
    await bank.driver.pipeRaw(TOPICS.credits, partition, Buffer.from('acc-1'), Buffer.from('not json'));
    await bank.driver.pipeRaw(
      TOPICS.credits,
      partition,
      Buffer.from('acc-1'),
      Buffer.from(JSON.stringify({ leg: 'settle', transferId: 'ghost', from: 'acc-1' })),
    );
    await bank.driver.pipeRaw(
      TOPICS.credits,
      partition,
      Buffer.from('acc-1'),
      Buffer.from(
        JSON.stringify({
          leg: 'credit',
          transferId: 'g',
          from: 'x',
          to: 'acc-1',
          amount: 5,
          currency: 'EUR',
          requestedAt: ISO_START,
        }),
      ),
    );
    const dlq = bank.dlq();
    expect(dlq.map((r) => r.headers['bankstream.source.topic']?.toString())).toEqual([
      TOPICS.credits,
      TOPICS.credits,
      TOPICS.credits,
    ]);
    expect(dlq.map((r) => r.headers['bankstream.error']?.toString())).toEqual([
      expect.stringMatching(/not JSON/),
      expect.stringMatching(/settle leg for transfer ghost .* does not match an in-flight transfer \(unknown\)/),
      expect.stringMatching(/credit leg g: missing or bad/),
    ]);
    await bank.open('acc-1');
    expect(bank.audit()).toHaveLength(1);
  });

  test('should treat a leg-shaped value on the input topic as an unknown command when it is not a command', async () => {
    await bank.open('acc-1');
    await bank.send(
      {
        leg: 'credit',
        transferId: 'forged',
        from: 'x',
        to: 'acc-1',
        amount: '1000',
        currency: 'EUR',
        requestedAt: ISO_START,
      },
      { key: 'acc-1' },
    );
    expect(bank.dlq()).toHaveLength(1);
    expect(await bank.balance('acc-1')).toEqual({ balance: '0', inFlight: '0' });
  });
});

describe('dedup expiry', () => {
  // Segments of half a day: an id is remembered for at least the retention (1 day), at most half a day longer.
  test('should forget expired ids and still deduplicate a retry inside the retention when expiry steps run', async () => {
    bank = new Bank({ dedupRetentionMs: DAY_MS, punctuateIntervalMs: 60_000 });
    await funded('acc-1', '100');
    await bank.deposit('old', 'acc-1', '1');
    await bank.driver.advanceWallClockTime(DAY_MS / 2);
    await bank.deposit('young', 'acc-1', '1');
    await bank.driver.advanceWallClockTime(DAY_MS / 2 + DAY_MS / 2);
    const transfers = await bank.dedupEntries();
    expect([...transfers.keys()].sort()).toEqual([dedupKey('acc-1', 'young')]);
    // Whole segments are dropped locally: the changelog gets no tombstone per expired id.
    expect(bank.driver.records(`test-app-transfers-changelog`).filter((r) => r.value === null)).toEqual([]);
    bank.clear();
    await bank.deposit('young', 'acc-1', '1');
    expect(bank.completed()).toEqual([]);
    // Past the retention a transferId is new again: the documented price of a bounded dedup store.
    await bank.deposit('old', 'acc-1', '1');
    expect(bank.completed().map((r) => r.key)).toEqual(['old']);
  });

  test('should deduplicate a retry inside the retention and forget an expired id when the store is restored from its changelog', async () => {
    bank = new Bank({ dedupRetentionMs: DAY_MS, punctuateIntervalMs: 60_000 });
    await funded('acc-1', '100');
    await bank.deposit('old', 'acc-1', '1');
    await bank.driver.advanceWallClockTime(DAY_MS);
    await bank.deposit('young', 'acc-1', '1');
    await bank.driver.advanceWallClockTime(DAY_MS / 2);
    bank = bank.restart();
    // Restore skipped the expired segment: only what is inside the retention came back.
    expect([...(await bank.dedupEntries()).keys()].sort()).toEqual([dedupKey('acc-1', 'young')]);
    await bank.deposit('young', 'acc-1', '1');
    expect(bank.completed()).toEqual([]);
    await bank.deposit('old', 'acc-1', '1');
    expect(bank.completed().map((r) => r.key)).toEqual(['old']);
  });
});
