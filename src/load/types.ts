// Interfaces of the load generator (no code): what runLoad takes, reports while running, and returns.
import type { KafkaSecurityConfig } from '../config/config.ts';
import type { Skew } from './random.ts';

/** Every kind of command the generator sends; `invalid:*` kinds are the deliberately bad requests. */
export type CommandKind =
  | 'open_account'
  | 'deposit'
  | 'transfer'
  | 'invalid:negative_amount'
  | 'invalid:zero_amount'
  | 'invalid:excess_precision'
  | 'invalid:number_amount'
  | 'invalid:unknown_currency'
  | 'invalid:unknown_to_account'
  | 'invalid:unknown_from_account'
  | 'invalid:same_account'
  | 'invalid:insufficient_funds'
  | 'invalid:not_json'
  | 'invalid:unknown_type';

/** Where the processor must answer a command (README-BANK.md): an outcome code, an audit event, or the DLQ. */
export type Expectation =
  | { readonly topic: 'completed' }
  | { readonly topic: 'completed_or_failed'; readonly code: string }
  | { readonly topic: 'failed'; readonly code: string }
  | { readonly topic: 'audit'; readonly event: string }
  | { readonly topic: 'dlq' };

export interface LoadOptions {
  /** Kafka bootstrap brokers (host:port). */
  brokers: string[];
  /** TLS/SASL of the Kafka connection (KAFKA_SECURITY_PROTOCOL and friends); plaintext when absent. */
  security?: KafkaSecurityConfig;
  /** The command topic (transaction_initiated). It must exist: the generator never creates topics. */
  topic: string;
  /** How many accounts the transfers use (acc ids `${accountPrefix}-${i}`). */
  accounts: number;
  /** Open and fund the accounts first (default true); false when they exist from an earlier run. */
  setup?: boolean;
  /** Deposit per account during setup, a decimal string in `currency` (default "1000000.00"). */
  fundingAmount?: string;
  /** Transfers per second; 0 = as fast as the producer goes (default 0). */
  ratePerSecond?: number;
  /** Stop after this long (the transfer phase; setup not counted). */
  durationMs?: number;
  /** Stop after this many transfer-phase commands (valid and invalid together). */
  count?: number;
  /** Account choice (default uniform). */
  skew?: Skew;
  /** Share of transfer-phase commands that are deliberately invalid, in [0, 1] (default 0). */
  invalidRatio?: number;
  /** Seed of every random choice (default 1). */
  seed?: number;
  /** Prefix of transfer ids; unique per run by default so that reruns are not deduplicated. */
  runId?: string;
  /** Prefix of account ids (default "acc"). */
  accountPrefix?: string;
  /** ISO 4217 code of every account and amount (default EUR; amounts assume 2 decimals). */
  currency?: string;
  /** Records per produce request (default 500). */
  batchRecordsMax?: number;
  /** Produce requests awaited at once (default 4). */
  inflightBatchesMax?: number;
  /** Pause after setup so the processor applies it before transfers arrive (default 1000 ms). */
  setupSettleMs?: number;
  /** Return every sent command's id and expectation (default false; memory grows with the count). */
  recordIds?: boolean;
  /** Called about every progressIntervalMs and once at the end. */
  onProgress?: (progress: LoadProgress) => void;
  progressIntervalMs?: number;
  /** Aborts the run early (the result still describes what was sent). */
  signal?: AbortSignal;
  clientId?: string;
}

export interface LoadProgress {
  phase: 'setup' | 'transfers' | 'done';
  /** Commands acknowledged by the broker in this phase. */
  sent: number;
  /** The phase's total when known (setup, or a count-bounded run). */
  total: number | undefined;
  elapsedMs: number;
  /** The phase's duration bound, when time-bounded. */
  durationMs: number | undefined;
  ratePerSecond: number;
  errors: number;
}

export interface SentCommand {
  /** transferId, or accountId for account commands; the marker for commands without one. */
  id: string;
  kind: CommandKind;
  key: string;
  expect: Expectation;
}

export interface LoadResult {
  runId: string;
  topic: string;
  setup: { accounts: number; deposits: number; durationMs: number };
  /** Transfer phase: commands acknowledged by the broker. */
  sent: number;
  valid: number;
  invalid: number;
  byKind: Partial<Record<CommandKind, number>>;
  /**
   * What the processor owes for the transfer phase: valid transfers complete (or fail with
   * insufficient_funds when a balance runs dry), invalid ones fail with a known code or are dead-lettered.
   */
  expected: { transfers: number; failed: Record<string, number>; dlq: number };
  /** Commands that the broker did not acknowledge (after the client's retries). */
  errors: number;
  /** The first produce failure, when there was one. */
  firstError?: string;
  durationMs: number;
  ratePerSecond: number;
  /** Whether the run ended because of `signal` rather than its count or duration. */
  aborted: boolean;
  ids?: SentCommand[];
}
