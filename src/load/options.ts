// Defaults and validation of LoadOptions: every bound is explicit, every error names its option.
import { LoadOptionsError } from './errors.ts';
import type { Skew } from './random.ts';
import type { LoadOptions } from './types.ts';

export const LOAD_DEFAULTS = {
  setup: true,
  fundingAmount: '1000000.00',
  ratePerSecond: 0,
  invalidRatio: 0,
  seed: 1,
  accountPrefix: 'acc',
  currency: 'EUR',
  batchRecordsMax: 500,
  inflightBatchesMax: 4,
  setupSettleMs: 1000,
  recordIds: false,
  progressIntervalMs: 1000,
  clientId: 'bankstream-load',
} as const;

/** Hard bounds: a load run always stops by itself and never asks for absurd memory. */
export const LOAD_LIMITS = {
  accountsMax: 5_000_000,
  countMax: 1_000_000_000,
  durationMsMax: 24 * 3600 * 1000,
  ratePerSecondMax: 10_000_000,
  batchRecordsMax: 10_000,
  inflightBatchesMax: 64,
  recordIdsMax: 10_000_000,
} as const;

export type ResolvedLoadOptions = Required<
  Omit<LoadOptions, 'durationMs' | 'count' | 'onProgress' | 'signal' | 'skew' | 'runId'>
> &
  Pick<LoadOptions, 'durationMs' | 'count' | 'onProgress' | 'signal'> & { skew: Skew; runId: string };

const ID_PART = /^[A-Za-z0-9._:-]{1,100}$/;
const DECIMAL_2 = /^(0|[1-9][0-9]{0,15})\.[0-9]{2}$/;

export function resolveLoadOptions(options: LoadOptions): ResolvedLoadOptions {
  const o = { ...LOAD_DEFAULTS, ...definedOnly(options) } as Omit<LoadOptions, keyof typeof LOAD_DEFAULTS> &
    Required<Pick<LoadOptions, keyof typeof LOAD_DEFAULTS>>;
  if (!Array.isArray(o.brokers) || o.brokers.length === 0)
    throw new LoadOptionsError('brokers', 'expected at least one host:port');
  if (typeof o.topic !== 'string' || !/^[A-Za-z0-9._-]{1,249}$/.test(o.topic))
    throw new LoadOptionsError('topic', `expected a Kafka topic name, got ${JSON.stringify(o.topic)}`);
  integer('accounts', o.accounts, 2, LOAD_LIMITS.accountsMax);
  integer('batchRecordsMax', o.batchRecordsMax, 1, LOAD_LIMITS.batchRecordsMax);
  integer('inflightBatchesMax', o.inflightBatchesMax, 1, LOAD_LIMITS.inflightBatchesMax);
  integer('setupSettleMs', o.setupSettleMs, 0, 600_000);
  integer('progressIntervalMs', o.progressIntervalMs, 50, 3_600_000);
  integer('seed', o.seed, 0, 0xffffffff);
  number('ratePerSecond', o.ratePerSecond, 0, LOAD_LIMITS.ratePerSecondMax);
  number('invalidRatio', o.invalidRatio, 0, 1);
  if (o.durationMs === undefined && o.count === undefined)
    throw new LoadOptionsError('durationMs', 'give durationMs or count (or both): a load run must be bounded');
  if (o.durationMs !== undefined) integer('durationMs', o.durationMs, 1, LOAD_LIMITS.durationMsMax);
  if (o.count !== undefined) integer('count', o.count, 0, LOAD_LIMITS.countMax);
  if (o.recordIds && (o.count === undefined || o.count + 2 * o.accounts > LOAD_LIMITS.recordIdsMax)) {
    throw new LoadOptionsError('recordIds', `needs a count, and at most ${LOAD_LIMITS.recordIdsMax} commands in all`);
  }
  if (!DECIMAL_2.test(o.fundingAmount))
    throw new LoadOptionsError(
      'fundingAmount',
      `expected a positive decimal string with 2 decimals, got ${JSON.stringify(o.fundingAmount)}`,
    );
  if (!/^[A-Z]{3}$/.test(o.currency))
    throw new LoadOptionsError('currency', `expected an ISO 4217 code, got ${JSON.stringify(o.currency)}`);
  if (!ID_PART.test(o.accountPrefix))
    throw new LoadOptionsError(
      'accountPrefix',
      `expected 1 to 100 of [A-Za-z0-9._:-], got ${JSON.stringify(o.accountPrefix)}`,
    );
  const runId = o.runId ?? `load-${o.seed}-${Date.now().toString(36)}`;
  if (!ID_PART.test(runId))
    throw new LoadOptionsError('runId', `expected 1 to 100 of [A-Za-z0-9._:-], got ${JSON.stringify(runId)}`);
  const skew = o.skew ?? { kind: 'uniform' };
  if (skew.kind === 'zipf') number('skew', skew.exponent, 0.01, 10);
  return { ...o, runId, skew } as ResolvedLoadOptions;
}

/** "uniform" or "zipf:<exponent>" (e.g. zipf:1.1), as the CLI takes it. */
export function parseSkew(text: string): Skew {
  if (text === 'uniform') return { kind: 'uniform' };
  const match = /^zipf(?::([0-9]+(?:\.[0-9]+)?))?$/.exec(text);
  if (!match)
    throw new LoadOptionsError(
      'skew',
      `expected "uniform" or "zipf:<exponent>" (e.g. zipf:1.1), got ${JSON.stringify(text)}`,
    );
  const exponent = Number(match[1] ?? '1.1');
  if (!(exponent > 0 && exponent <= 10))
    throw new LoadOptionsError('skew', `the Zipf exponent must be in (0, 10], got ${match[1]}`);
  return { kind: 'zipf', exponent };
}

/** "30s", "2m", "500ms", "1h" or plain seconds → milliseconds. */
export function parseDuration(option: string, text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match)
    throw new LoadOptionsError(option, `expected a duration like 30s, 2m or 500ms, got ${JSON.stringify(text)}`);
  const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(match[1]) * unitMs);
}

function integer(option: string, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new LoadOptionsError(option, `expected an integer between ${min} and ${max}, got ${String(value)}`);
  }
}

function number(option: string, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new LoadOptionsError(option, `expected a number between ${min} and ${max}, got ${String(value)}`);
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
