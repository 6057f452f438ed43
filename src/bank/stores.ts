// The bank's three state stores, their value shapes and typed access. Values go through jsonSerde,
// which has no bigint: money is stored as a string of integer minor units ("12550" = 125.50 EUR).
// Readers outside the bank (the HTTP API) format it with formatMoney(BigInt(v), currencyDigits(currency)).
import { type PurgeableStore, SegmentedKeyValueStore } from '../stores/segmented-store.ts';
import type { KeyValueStore, PrefetchCollector, ProcessorContext } from '../topology/types.ts';
import type { TransferFailureCode } from './failure-codes.ts';

/** Store names; the topics tool creates a changelog `<appId>-<name>-changelog` for each. */
export const BANK_STORES = ['accounts', 'balances', 'transfers', 'holds'] as const;
export type BankStoreName = (typeof BANK_STORES)[number];

/** accounts: accountId → the account. */
export interface AccountRow {
  ownerId: string;
  currency: string;
  /** Integer minor units, >= 0. */
  overdraftLimit: string;
  status: 'open' | 'closed';
  /** ISO-8601 UTC. */
  openedAt: string;
  closedAt?: string;
}

/** balances: accountId → money. Integer minor units as strings. */
export interface BalanceRow {
  /** What the account holds now; outgoing transfers in flight are already taken off. */
  balance: string;
  /** Sum of outgoing transfers debited here and not yet settled or refunded by the to task. */
  inFlight: string;
  /** Sum of pending holds on this account as `from` (absent: 0). See README-BANK "Holds". */
  pendingDebits?: string;
  /** Sum of pending holds on this account as `to` (absent: 0). Never counted as available. */
  pendingCredits?: string;
}

export interface Balance {
  balance: bigint;
  inFlight: bigint;
  pendingDebits?: bigint;
  pendingCredits?: bigint;
}

/** What the from task keeps of a transfer in flight, to settle or refund it without trusting the leg. */
export interface PendingTransfer {
  from: string;
  to: string;
  /** Integer minor units. */
  amount: string;
  currency: string;
  reference?: string;
  requestedAt: string;
}

/**
 * transfers: dedupKey(acted-on account, transferId) → the dedup entry of the task that decided it (the
 * from / account task). Entries written before the key named the account sit under the bare
 * transferId ("legacy"); they are still found (findDedup) until the retention deletes them.
 */
export interface TransferEntry {
  /** The command's identifying fields (commands.ts fingerprintOf): same fingerprint = exact duplicate. */
  fingerprint: string;
  status: 'in_flight' | 'completed' | 'failed';
  code?: TransferFailureCode;
  /** Epoch ms of the last state change; final entries expire `dedupRetentionMs` after it. */
  decidedAt: number;
  /** Fingerprints of conflicting duplicates already answered with idempotency_conflict (bounded). */
  conflicts?: string[];
  /** Present while status is in_flight. */
  pending?: PendingTransfer;
}

/**
 * The transfers store key of a money command: the account it acts on (its record key: `from`, or
 * `accountId`) and its transferId, which is where a transferId is unique (README-BANK "Idempotency").
 * It starts with NUL and length-prefixes the account, so no two pairs share a key and no key equals a
 * legacy one (a bare transferId: ids hold no control characters). The to task's creditedKey entries live
 * in the same store.
 */
export function dedupKey(account: string, transferId: string): string {
  return `\u0000${account.length}\u0000${account}\u0000${transferId}`;
}

/**
 * The prefetch keys a handler reads, for collectKeys (processor.ts) and collectHoldKeys (hold-dispatch.ts):
 * `account` an account's two entries; `dedup` the dedup entry of (account, transferId) and the legacy
 * bare-transferId one findDedup falls back to.
 */
export function prefetchKeys(
  keys: PrefetchCollector,
  transfers: Pick<BankStores['transfers'], 'keysFor'>,
): { account(id: string): void; dedup(acted: string, transferId: string): void } {
  return {
    account(id) {
      keys.add('accounts', id);
      keys.add('balances', id);
    },
    dedup(acted, transferId) {
      for (const key of transfers.keysFor(dedupKey(acted, transferId))) keys.add('transfers', key);
      // The bare transferId of entries written before keys named the account (only while old-layout entries are left).
      for (const key of transfers.keysFor(transferId)) keys.add('transfers', key);
    },
  };
}

/**
 * The to task's mark that it applied (or refused) the credit leg of (from, transferId): a verbatim copy
 * of a signed leg verifies, so without it a copy written to the credits topic would credit `to` again.
 * It starts with NUL then "c" (a dedupKey has a digit there), so it never equals a dedupKey of the same
 * pair — which matters when `from` and `to` share a task — nor a legacy key. It lives in the segmented
 * view like a dedup entry (same shape: a final status and a decidedAt), so it expires with its segment.
 * (Not SOH: physical keys starting with SOH are the segmented store's segment entries.)
 */
export function creditedKey(from: string, transferId: string): string {
  return `\u0000c${from.length}\u0000${from}\u0000${transferId}`;
}

/** The transferId a transfers store key names (any key format), for reports. */
export function transferIdOfDedupKey(key: string): string {
  const match = /^\u0000c?(\d+)\u0000/.exec(key);
  if (!match) return key;
  const accountStart = match[0].length;
  return key.slice(accountStart + Number(match[1]) + 1);
}

/** The dedup entry of (account, transferId) and the key it lives under: the legacy bare-transferId key when only that one exists. */
export function findDedup(
  transfers: KeyValueStore<TransferEntry>,
  account: string,
  transferId: string,
): { key: string; entry: TransferEntry | undefined } {
  const key = dedupKey(account, transferId);
  const entry = transfers.get(key);
  if (entry !== undefined) return { key, entry };
  // A legacy entry keeps the old scope (the whole task) until it expires: same fingerprint = duplicate, else conflict.
  const legacy = transfers.get(transferId);
  return legacy === undefined ? { key, entry: undefined } : { key: transferId, entry: legacy };
}

/**
 * The idempotency gate of a command on (account, transferId), for admit (processor.ts) and admitHold
 * (hold-dispatch.ts): `new`; `duplicate` (the same fingerprint, or a conflict already answered: silent);
 * or a first conflict, remembered (up to CONFLICTS_REMEMBERED_MAX), with the reason to answer it with.
 */
export function dedupVerdict(
  transfers: KeyValueStore<TransferEntry>,
  account: string,
  transferId: string,
  fingerprint: string,
): 'new' | 'duplicate' | { conflict: string } {
  const { key, entry } = findDedup(transfers, account, transferId);
  if (entry === undefined) return 'new';
  if (entry.fingerprint === fingerprint || entry.conflicts?.includes(fingerprint)) return 'duplicate';
  const conflicts = entry.conflicts ?? [];
  if (conflicts.length < CONFLICTS_REMEMBERED_MAX) {
    transfers.put(key, { ...entry, conflicts: [...conflicts, fingerprint] });
  }
  return {
    conflict: `transferId ${transferId} was already used for a different command (${entry.status}); that one stands`,
  };
}

/** How the transfers store is segmented (see SegmentedKeyValueStore). */
export interface DedupLayout {
  retentionMs: number;
  segmentIntervalMs: number;
}

/** In-flight entries never expire (the settle or refund leg needs them); final ones from their decision. */
export function dedupTimeOf(entry: TransferEntry): number | null {
  return entry.status === 'in_flight' ? null : entry.decidedAt;
}

/** Kafka Streams' default segment interval: half the retention, so about three segments are live. */
export function defaultDedupSegmentIntervalMs(retentionMs: number): number {
  return Math.max(1, Math.floor(retentionMs / 2));
}

/** The transfers store as the bank reads and writes it: dedup entries and credited marks, segmented by decision time. */
export function transfersView(
  inner: PurgeableStore<unknown>,
  dedup: DedupLayout,
  clock: () => number,
): SegmentedKeyValueStore<TransferEntry> {
  return new SegmentedKeyValueStore<TransferEntry>(inner, {
    retentionMs: dedup.retentionMs,
    segmentIntervalMs: dedup.segmentIntervalMs,
    timeOf: dedupTimeOf,
    clock,
    // Stores written before segments hold entries under their bare keys: found, moved and swept.
    oldLayout: true,
    // Bare-transferId keys (before keys named the account) stay where they are until they expire.
    // dedupKey and creditedKey both start with NUL, so both go through the segments.
    oldLayoutOnly: (key) => !key.startsWith('\u0000'),
  });
}

/** Conflicting fingerprints remembered per transfer; beyond this, further distinct conflicts are answered each time. */
export const CONFLICTS_REMEMBERED_MAX = 16;

const ZERO: Balance = Object.freeze({ balance: 0n, inFlight: 0n });

/** Typed access to the three stores of one task. Values read are never mutated: every write is a new object. */
export class BankStores {
  readonly accounts: KeyValueStore<AccountRow>;
  readonly balances: KeyValueStore<BalanceRow>;
  /** Segmented by decision time: final entries expire with their segment, in-flight ones are pinned. */
  readonly transfers: SegmentedKeyValueStore<TransferEntry>;

  constructor(context: ProcessorContext, dedup: DedupLayout) {
    this.accounts = context.getStore<AccountRow>('accounts');
    this.balances = context.getStore<BalanceRow>('balances');
    this.transfers = transfersView(context.getStore<unknown>('transfers') as PurgeableStore<unknown>, dedup, () =>
      context.currentSystemTimeMs(),
    );
  }

  account(accountId: string): AccountRow | undefined {
    return this.accounts.get(accountId);
  }

  balance(accountId: string): Balance {
    const row = this.balances.get(accountId);
    if (!row) return ZERO;
    const value: Balance = { balance: BigInt(row.balance), inFlight: BigInt(row.inFlight) };
    if (row.pendingDebits !== undefined) value.pendingDebits = BigInt(row.pendingDebits);
    if (row.pendingCredits !== undefined) value.pendingCredits = BigInt(row.pendingCredits);
    return value;
  }

  /** Writes a balance row; pending sums only when not zero, so accounts without holds keep the old shape. */
  putBalance(accountId: string, value: Balance): void {
    const row: BalanceRow = { balance: value.balance.toString(), inFlight: value.inFlight.toString() };
    if (value.pendingDebits) row.pendingDebits = value.pendingDebits.toString();
    if (value.pendingCredits) row.pendingCredits = value.pendingCredits.toString();
    this.balances.put(accountId, row);
  }

  /** Adds `delta` minor units to the balance (negative to debit) and `inFlightDelta` to the in-flight sum. */
  adjust(accountId: string, delta: bigint, inFlightDelta = 0n): Balance {
    const current = this.balance(accountId);
    const next = { ...current, balance: current.balance + delta, inFlight: current.inFlight + inFlightDelta };
    if (next.inFlight < 0n) throw new Error(`account ${accountId}: in-flight sum would go negative (${next.inFlight})`);
    this.putBalance(accountId, next);
    return next;
  }

  /** Adds to the pending-debit and pending-credit sums of holds (README-BANK "Holds"); neither may go negative. */
  adjustPending(accountId: string, debitsDelta: bigint, creditsDelta: bigint): Balance {
    const current = this.balance(accountId);
    const pendingDebits = (current.pendingDebits ?? 0n) + debitsDelta;
    const pendingCredits = (current.pendingCredits ?? 0n) + creditsDelta;
    if (pendingDebits < 0n || pendingCredits < 0n)
      throw new Error(`account ${accountId}: pending sums would go negative (${pendingDebits}, ${pendingCredits})`);
    const next = { ...current, pendingDebits, pendingCredits };
    this.putBalance(accountId, next);
    return next;
  }
}
