// A running stack for the console tests (issue 24): the HTTP test stack (local broker, throwaway database,
// in-process instances), users of every role, a few open accounts, a load of deposits and transfers sent
// through the API, one forged credit leg (a dead letter) and one unreadable outcome (a sink reject).
import { randomUUID } from 'node:crypto';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { produce } from '../../helpers/kafka.ts';
import { type Stack, call, createStack, login } from '../http/stack.ts';

export const CURRENCY = 'EUR';

export interface ConsoleStack {
  stack: Stack;
  tokens: { admin: string; teller: string; customer: string };
  accounts: string[];
}

/** The stack with its first instance running and users admin1, teller1, alice (customer) and their tokens. */
export async function startConsoleStack(label: string, accountCount = 8): Promise<ConsoleStack> {
  const stack = await createStack(label, { STANDBY_REPLICAS: '1' });
  const first = await stack.start({ INSTANCE_ID: 'c1' });
  const url = first.http!.url;
  await stack.addUser('admin1', 'admin');
  await stack.addUser('teller1', 'teller');
  await stack.addUser('alice', 'customer');
  const tokens = {
    admin: await login(url, 'admin1'),
    teller: await login(url, 'teller1'),
    customer: await login(url, 'alice'),
  };
  const accounts = Array.from({ length: accountCount }, (_, i) => `${stack.prefix}-acc-${i}`);
  for (const accountId of accounts) {
    const opened = await call(url, 'POST', '/v1/accounts?wait=20000', {
      token: tokens.teller,
      body: { accountId, ownerId: 'alice', currency: CURRENCY },
    });
    if (opened.status !== 201 && opened.status !== 200)
      throw new Error(`open ${accountId}: ${opened.status} ${opened.text}`);
  }
  return { stack, tokens, accounts };
}

/** Deposits and transfers sent through the API until stopped (about `perSecond` commands a second). */
export class ApiLoad {
  readonly #running: Promise<void>;
  #stopped = false;
  sent = 0;
  refused = 0;

  constructor(url: () => string, token: string, accounts: string[], perSecond = 40) {
    this.#running = (async () => {
      for (let i = 0; !this.#stopped; i++) {
        const from = accounts[i % accounts.length]!;
        const to = accounts[(i + 3) % accounts.length]!;
        const deposit = i % 2 === 0;
        const response = await call(url(), 'POST', deposit ? '/v1/deposits' : '/v1/transfers', {
          token,
          headers: { 'Idempotency-Key': randomUUID() },
          body: deposit
            ? { accountId: from, amount: '10.00', currency: CURRENCY }
            : { transferId: randomUUID(), from, to, amount: '1.25', currency: CURRENCY, reference: 'console load' },
        }).catch(() => undefined);
        if (response && response.status < 300) this.sent++;
        else this.refused++;
        await new Promise((resolve) => setTimeout(resolve, 1000 / perSecond));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#running;
  }
}

/** A credit leg without the cluster's MAC, written straight to the credits topic: the engine dead-letters it. */
export async function forgeCreditLeg(stack: Stack, account: string, partitions = 4): Promise<void> {
  await produce([
    {
      topic: `${stack.prefix}-credits`,
      partition: partitionForKey(account, partitions),
      key: Buffer.from(account),
      value: Buffer.from(JSON.stringify({ kind: 'credit', transferId: 'forged-1', to: account, amount: '1000000.00' })),
    },
  ]);
}

/** An outcome record that is not JSON, on the completed topic: the sink keeps it in sink_rejects. */
export async function unreadableOutcome(stack: Stack): Promise<void> {
  await produce([
    {
      topic: `${stack.prefix}-transaction_completed`,
      partition: 0,
      key: Buffer.from('not-an-account'),
      value: Buffer.from('{ this is not json'),
    },
  ]);
}
