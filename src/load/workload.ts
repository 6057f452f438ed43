// The commands a load run sends, in the documented wire format (src/bank/README-BANK.md), generated
// deterministically from the seed. Pure: no Kafka here, so the shapes are unit-testable.
import type { ResolvedLoadOptions } from './options.ts';
import { accountPicker, randomIndex, type Random, seededRandom } from './random.ts';
import type { CommandKind, Expectation } from './types.ts';

export interface LoadMessage {
  key: string;
  value: string;
  kind: CommandKind;
  id: string;
  expect: Expectation;
}

type InvalidKind = Extract<CommandKind, `invalid:${string}`>;

/** Every invalid kind, equally likely, with what the processor must answer. */
export const INVALID_KINDS: ReadonlyArray<{ kind: InvalidKind; expect: Expectation }> = [
  { kind: 'invalid:negative_amount', expect: { topic: 'failed', code: 'invalid_amount' } },
  { kind: 'invalid:zero_amount', expect: { topic: 'failed', code: 'invalid_amount' } },
  { kind: 'invalid:excess_precision', expect: { topic: 'failed', code: 'invalid_amount' } },
  { kind: 'invalid:number_amount', expect: { topic: 'failed', code: 'malformed' } },
  { kind: 'invalid:unknown_currency', expect: { topic: 'failed', code: 'malformed' } },
  { kind: 'invalid:unknown_to_account', expect: { topic: 'failed', code: 'account_not_found' } },
  { kind: 'invalid:unknown_from_account', expect: { topic: 'failed', code: 'account_not_found' } },
  { kind: 'invalid:same_account', expect: { topic: 'failed', code: 'same_account' } },
  { kind: 'invalid:insufficient_funds', expect: { topic: 'failed', code: 'insufficient_funds' } },
  { kind: 'invalid:not_json', expect: { topic: 'dlq' } },
  { kind: 'invalid:unknown_type', expect: { topic: 'dlq' } },
];

const TRANSFER_EXPECT: Expectation = { topic: 'completed_or_failed', code: 'insufficient_funds' };
/** Valid transfer amounts: 0.01 to 99.99 in minor units. */
const AMOUNT_MINOR_MAX = 9999;
/** Far above any funded balance, so the debit must be refused. */
const HUGE_AMOUNT = '999999999999.00';

export class Workload {
  readonly #options: ResolvedLoadOptions;
  readonly #random: Random;
  readonly #pickAccount: () => number;
  #sequence = 0;

  constructor(options: ResolvedLoadOptions) {
    this.#options = options;
    this.#random = seededRandom(options.seed);
    this.#pickAccount = accountPicker(this.#random, options.accounts, options.skew);
  }

  accountId(index: number): string {
    return `${this.#options.accountPrefix}-${index}`;
  }

  openAccount(index: number): LoadMessage {
    const accountId = this.accountId(index);
    const value = {
      type: 'open_account',
      accountId,
      ownerId: `owner-${accountId}`,
      currency: this.#options.currency,
      overdraftLimit: '0.00',
      requestedAt: now(),
    };
    return {
      key: accountId,
      value: JSON.stringify(value),
      kind: 'open_account',
      id: accountId,
      expect: { topic: 'audit', event: 'account_opened' },
    };
  }

  deposit(index: number): LoadMessage {
    const accountId = this.accountId(index);
    const transferId = `${this.#options.runId}-fund-${index}`;
    const value = {
      type: 'deposit',
      transferId,
      accountId,
      amount: this.#options.fundingAmount,
      currency: this.#options.currency,
      requestedAt: now(),
    };
    return {
      key: accountId,
      value: JSON.stringify(value),
      kind: 'deposit',
      id: transferId,
      expect: { topic: 'completed' },
    };
  }

  /** The next transfer-phase command: a valid transfer, or with probability invalidRatio an invalid one. */
  next(): LoadMessage {
    const transferId = `${this.#options.runId}-t-${this.#sequence++}`;
    const from = this.#pickAccount();
    let to = this.#pickAccount();
    if (to === from) to = (from + 1 + randomIndex(this.#random, this.#options.accounts - 1)) % this.#options.accounts;
    const base: Record<string, unknown> = {
      type: 'transfer',
      transferId,
      from: this.accountId(from),
      to: this.accountId(to),
      amount: formatMinor(BigInt(1 + randomIndex(this.#random, AMOUNT_MINOR_MAX))),
      currency: this.#options.currency,
      requestedAt: now(),
    };
    if (this.#options.invalidRatio === 0 || this.#random() >= this.#options.invalidRatio) {
      return {
        key: base['from'] as string,
        value: JSON.stringify(base),
        kind: 'transfer',
        id: transferId,
        expect: TRANSFER_EXPECT,
      };
    }
    const invalid = INVALID_KINDS[randomIndex(this.#random, INVALID_KINDS.length)]!;
    const value = spoil(invalid.kind, base, `${this.#options.accountPrefix}-missing-${transferId}`);
    return { key: base['from'] as string, value, kind: invalid.kind, id: transferId, expect: invalid.expect };
  }
}

/** The invalid variant of a valid transfer (mutates `base`); `from` stays the key except where noted. */
function spoil(kind: InvalidKind, base: Record<string, unknown>, missingAccount: string): string {
  switch (kind) {
    case 'invalid:negative_amount':
      return JSON.stringify({ ...base, amount: `-${base['amount'] as string}` });
    case 'invalid:zero_amount':
      return JSON.stringify({ ...base, amount: '0.00' });
    case 'invalid:excess_precision':
      return JSON.stringify({ ...base, amount: `${base['amount'] as string}1` });
    case 'invalid:number_amount':
      return JSON.stringify({ ...base, amount: Number(base['amount']) });
    case 'invalid:unknown_currency':
      return JSON.stringify({ ...base, currency: 'XXX' });
    case 'invalid:unknown_to_account':
      return JSON.stringify({ ...base, to: missingAccount });
    case 'invalid:unknown_from_account':
      // The key must follow `from` (else the command is malformed), so the caller's key is replaced too.
      base['from'] = missingAccount;
      return JSON.stringify(base);
    case 'invalid:same_account':
      return JSON.stringify({ ...base, to: base['from'] });
    case 'invalid:insufficient_funds':
      return JSON.stringify({ ...base, amount: HUGE_AMOUNT });
    case 'invalid:not_json':
      return JSON.stringify(base).slice(0, -1) + ',';
    case 'invalid:unknown_type':
      return JSON.stringify({ ...base, type: 'teleport' });
  }
}

/** Minor units (2 decimals) as the wire's decimal string: 1234n → "12.34". */
export function formatMinor(minor: bigint): string {
  const whole = minor / 100n;
  const cents = minor % 100n;
  return `${whole}.${cents < 10n ? '0' : ''}${cents}`;
}

function now(): string {
  return new Date().toISOString();
}
