// The demo data of `bankstream dev` through the real bank topology (TopologyTestDriver): the balances
// it prints must be what the processor computes, and a second run must change nothing.
import { describe, expect, it } from 'vitest';
import { formatMoney } from '../../../src/bank/money.ts';
import { DEMO_ACCOUNTS, DEMO_USERS, SEED_TRANSFER_IDS, seedCommands } from '../../../src/dev/demo.ts';
import { localBrokerPort } from '../../../src/dev/kafka.ts';
import { Bank } from '../bank/harness.ts';

async function applySeed(bank: Bank): Promise<void> {
  for (const command of seedCommands()) await bank.send(command.value, { key: command.key });
}

describe('bankstream dev demo data', () => {
  it('should leave every demo account at its documented balance when the seed is applied', async () => {
    const bank = new Bank();
    await applySeed(bank);

    expect(bank.failed()).toEqual([]);
    expect(
      bank
        .completed()
        .map((row) => row.key)
        .sort(),
    ).toEqual([...SEED_TRANSFER_IDS].sort());
    for (const account of DEMO_ACCOUNTS) {
      const row = await bank.balance(account.accountId);
      expect(formatMoney(BigInt(row!.balance), 2), account.accountId).toBe(account.expectedBalance);
      expect(row!.inFlight).toBe('0');
    }
  });

  it('should change nothing when the seed is applied a second time (a second bankstream dev run)', async () => {
    const bank = new Bank();
    await applySeed(bank);
    const before = await bank.balances();
    bank.completed();
    bank.failed();

    await applySeed(bank);

    expect(bank.completed()).toEqual([]);
    expect(bank.failed()).toEqual([]);
    expect(await bank.balances()).toEqual(before);
  });

  it('should own every demo account by a demo customer', () => {
    const customers = new Set(DEMO_USERS.filter((user) => user.role === 'customer').map((user) => user.id));
    for (const account of DEMO_ACCOUNTS) expect(customers, account.accountId).toContain(account.ownerId);
    expect(DEMO_USERS.map((user) => user.role)).toEqual(expect.arrayContaining(['admin', 'teller', 'customer']));
  });
});

describe('localBrokerPort', () => {
  it('should give the port of a single loopback broker', () => {
    expect(localBrokerPort(['127.0.0.1:9092'])).toBe(9092);
    expect(localBrokerPort(['localhost:19092'])).toBe(19092);
  });

  it('should give nothing when the brokers are remote or several', () => {
    expect(localBrokerPort(['kafka:9092'])).toBeUndefined();
    expect(localBrokerPort(['127.0.0.1:9092', '127.0.0.1:9093'])).toBeUndefined();
  });
});
