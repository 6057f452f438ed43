// The shapes of `bankstream reconcile`: its options, the report it returns, and the views it compares
// (reconcile.ts says how they fit together), with the keys the views are indexed by.
import type { AccountRow, BalanceRow, TransferEntry } from '../../bank/stores.ts';
import type { FetchedRecord } from '../../kafka/fetcher.ts';
import type { Logger } from '../../config/logger.ts';
import type { HoldStatus } from '../../bank/hold-store.ts';

export interface ReconcileOptions {
  /** Base URL of the HTTP API; when set, every account is also read through GET /v1/accounts/:id. */
  apiUrl?: string;
  /** Bearer token for the API (a teller or admin token reads any account). */
  apiToken?: string;
  /** How long to wait for the system to become quiet before comparing (default 30 000 ms; 0 checks once). */
  quietTimeoutMs?: number;
  /** Differences and differing accounts kept in the report; all of them are counted (default 1 000). */
  differencesMax?: number;
  /** Concurrent API requests (default 8). */
  apiConcurrency?: number;
  logger?: Logger;
}

export type DifferenceKind =
  | 'not_quiet'
  | 'balance_mismatch'
  | 'status_mismatch'
  | 'missing_account'
  | 'in_flight'
  | 'invariant'
  | 'duplicate_outcome'
  | 'transaction_missing'
  | 'transaction_extra'
  | 'transaction_status'
  | 'conflicts_mismatch'
  | 'sink_reject'
  | 'unreadable_record'
  /** A changelog record without a valid MAC (src/kafka/record-mac.ts): forged, left out of the stores view. */
  | 'unauthenticated_record'
  | 'outcomes_truncated'
  | 'api_error'
  /** Holds (holds.ts): a resolution of a hold never placed; two resolutions of one hold. */
  | 'hold_unplaced'
  | 'hold_resolved_twice'
  /** A post of more than was held, or a resolution whose amount or `to` is not the placed hold's. */
  | 'hold_amount'
  /** An open hold whose deadline passed (the expiry punctuator should have expired it). */
  | 'hold_overdue'
  /** An account's pendingDebits / pendingCredits are not the sum of its open holds. */
  | 'hold_pending'
  /** The from task's hold row or Postgres `holds` disagrees with the outcome topics. */
  | 'hold_status';

export interface Difference {
  kind: DifferenceKind;
  accountId?: string;
  transferId?: string;
  message: string;
}

/** One account as each view sees it; money as decimal strings in the account's currency, null where the view has no row. */
export interface AccountLine {
  accountId: string;
  currency: string | null;
  stores: string | null;
  inFlight: string | null;
  outcomes: string;
  postgres: string | null;
  /** undefined when the API was not asked. */
  api?: string | null;
  storeStatus: string | null;
  postgresStatus: string | null;
}

export interface CurrencyTotal {
  currency: string;
  balances: string;
  deposits: string;
  withdrawals: string;
  ok: boolean;
}

export interface QuietState {
  quiet: boolean;
  waitedMs: number;
  /** Input and credits records the processor has not committed past. */
  processorPending: number;
  /** Outcome and audit records the sink has not stored offsets past. */
  sinkPending: number;
  /** "topic-partition" of every partition with an open transaction. */
  openTransactions: string[];
}

export interface ReconcileReport {
  ok: boolean;
  appId: string;
  checkedAt: string;
  quiet: QuietState;
  counts: {
    storeAccounts: number;
    postgresAccounts: number;
    apiAccounts: number | null;
    completed: number;
    failed: number;
    conflicts: number;
    postgresTransactions: number;
    postgresConflicts: number;
    /** Unresolved sink_rejects rows of the outcome and audit topics. */
    sinkRejects: number;
    inFlightAccounts: number;
    inFlightTransfers: number;
    /** Holds placed in the outcome topics, by how they ended (pending: not yet). */
    holds: HoldsCount;
  };
  currencies: CurrencyTotal[];
  accountsCompared: number;
  differingAccounts: AccountLine[];
  differences: Difference[];
  differencesTotal: number;
}

/** What the outcome topics say about one hold, (from, holdId). */
export interface HoldOutcomes {
  from: string;
  holdId: string;
  placed?: { to: string; amount: bigint; currency: string; expiresAtMs: number; where: string };
  resolutions: Array<{
    status: string;
    transferId: string;
    to: string;
    amount: bigint;
    heldAmount?: bigint;
    where: string;
  }>;
}

export interface HoldsCount {
  placed: number;
  posted: number;
  voided: number;
  expired: number;
  pending: number;
}

export interface Range {
  topic: string;
  partition: number;
  offset: bigint;
  end: bigint;
}

export type Offsets = Map<string, bigint>;

export interface StoreView {
  accounts: Map<string, AccountRow>;
  balances: Map<string, BalanceRow>;
  inFlightTransfers: Map<string, TransferEntry>;
  /** The from tasks' hold rows by store key (`holdKey(from, holdId)`). */
  holds: Map<string, { status: HoldStatus }>;
  unreadable: Difference[];
}

export interface OutcomeView {
  /** Net money per account, in minor units. */
  deltas: Map<string, bigint>;
  currencyOf: Map<string, string>;
  deposits: Map<string, bigint>;
  withdrawals: Map<string, bigint>;
  /** Every outcome record but conflicts, by position ("topic\0partition\0offset"). */
  records: Map<string, OutcomeRecord>;
  /** (acted-on account, transferId) → the decision times (epoch ms) of its outcomes. */
  decisions: Map<string, number[]>;
  /** Completed hold outcomes by `holdId(from, id)` (holds.ts). */
  holds: Map<string, HoldOutcomes>;
  completed: number;
  failed: number;
  conflicts: number;
  unreadable: Difference[];
  truncated: Difference[];
}

export interface OutcomeRecord {
  transferId: string;
  /** The account whose task decided it (accountId, else from); null when the outcome names none. */
  account: string | null;
  status: 'COMPLETED' | 'FAILED';
  where: string;
}

export interface SinkReject {
  where: string;
  key: string | null;
  error: string;
  rejectedAt: string;
}

export interface PostgresAccount {
  currency: string | null;
  status: string;
  balance: string;
}

export interface PostgresView {
  accounts: Map<string, PostgresAccount>;
  /** status by the row's source position ("topic\0partition\0offset"). */
  transactions: Map<string, { transferId: string; status: string }>;
  conflicts: number;
  rejects: SinkReject[];
  /** `holds` rows by `holdId(from_account, hold_id)`; posted_amount as Postgres prints it. */
  holds: Map<string, { status: string; postedAmount: string | null }>;
}

export type ApiView = Map<string, { balance: string | null; error?: string }>;

export function positionKey(topic: string, partition: number, offset: bigint | string): string {
  return `${topic}\u0000${partition}\u0000${offset}`;
}

export function where(record: FetchedRecord): string {
  return `${record.topic}-${record.partition}@${record.offset}`;
}

export function addTo(map: Map<string, bigint>, key: string, amount: bigint): void {
  map.set(key, (map.get(key) ?? 0n) + amount);
}
