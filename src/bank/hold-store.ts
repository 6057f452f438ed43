// The `holds` store (README-BANK "Holds"): the from task's hold rows and deadline index, and the to task's
// marks. One store, three key spaces told apart by their first character. Money as integer minor units.
import type { KeyValueStore, ProcessorContext } from '../topology/types.ts';
import { dedupKey } from './stores.ts';

export type HoldStatus = 'opening' | 'pending' | 'posted' | 'voided' | 'expired' | 'failed';

/** The from task's hold: the one place a hold's state is decided. */
export interface HoldRow {
  /** Of the `hold` command: a hold id used again after the dedup retention is still that hold. */
  fingerprint: string;
  from: string;
  to: string;
  /** Held amount, integer minor units. */
  amount: string;
  currency: string;
  reference?: string;
  requestedAt: string;
  expiresAtMs: number;
  status: HoldStatus;
  /** Posted amount (posted holds). */
  postedAmount?: string;
  /** ISO time of the post, void or expiry. */
  resolvedAt?: string;
  /** transferId of the post or void that resolved it. */
  resolvedBy?: string;
  /** A cross-partition post whose money is in flight to `to` until its hold_settle leg. */
  settling?: boolean;
}

/** The to task's mark of the pending credit of (from, holdId): legs apply to it at most once. */
export interface CreditMark {
  to: string;
  /** Held amount, integer minor units. */
  amount: string;
  status: 'pending' | 'posted' | 'released' | 'refused';
}

export interface ExpiryEntry {
  from: string;
  holdId: string;
}

/** A resolved hold row (`h`) or to-side mark (`c`) to forget once the dedup retention has passed. */
export interface ForgetEntry {
  from: string;
  holdId: string;
  of: 'h' | 'c';
}

export type HoldStoreValue = HoldRow | CreditMark | ExpiryEntry | ForgetEntry;

export const EXPIRY_PREFIX = 'x';
export const FORGET_PREFIX = 'f';
const EXPIRY_DIGITS = 15;

export function holdKey(from: string, holdId: string): string {
  return `h${dedupKey(from, holdId)}`;
}

export function markKey(from: string, holdId: string): string {
  return `c${dedupKey(from, holdId)}`;
}

/** Deadline-ordered: the zero-padded epoch ms sort as numbers (years 1000–9999 fit 15 digits). */
export function expiryKey(expiresAtMs: number, from: string, holdId: string): string {
  return `${EXPIRY_PREFIX}${String(expiresAtMs).padStart(EXPIRY_DIGITS, '0')}${dedupKey(from, holdId)}`;
}

/** The deadline (or forget time) an `x` (or `f`) key starts with. */
export function keyTimeMs(key: string): number {
  return Number(key.slice(1, 1 + EXPIRY_DIGITS));
}

/** The row (`h`) or mark (`c`) key a forget entry names. */
export function forgottenKey(entry: ForgetEntry): string {
  return entry.of === 'h' ? holdKey(entry.from, entry.holdId) : markKey(entry.from, entry.holdId);
}

/** Time-ordered as the expiry index: when a resolved row or mark may be forgotten. */
export function forgetKey(atMs: number, of: 'h' | 'c', from: string, holdId: string): string {
  return `${FORGET_PREFIX}${String(atMs).padStart(EXPIRY_DIGITS, '0')}${of}${dedupKey(from, holdId)}`;
}

/**
 * Typed access to the holds store of one task. Every write goes through here, so the hold expiry
 * punctuator (hold-expiry.ts) is told of each (`onWrite`): what changed since its background scan read.
 */
export class HoldStore {
  readonly store: KeyValueStore<HoldStoreValue>;
  /** How long a resolved hold (and its to-side mark) is kept: the dedup retention. */
  readonly retentionMs: number;
  /** Told every write (value null: a delete), before it is made. */
  onWrite: ((key: string, value: HoldStoreValue | null) => void) | undefined;

  constructor(context: ProcessorContext, retentionMs: number) {
    this.store = context.getStore('holds');
    this.retentionMs = retentionMs;
  }

  hold(from: string, holdId: string): HoldRow | undefined {
    return this.store.get(holdKey(from, holdId)) as HoldRow | undefined;
  }

  putHold(holdId: string, row: HoldRow): void {
    this.#put(holdKey(row.from, holdId), row);
  }

  mark(from: string, holdId: string): CreditMark | undefined {
    return this.store.get(markKey(from, holdId)) as CreditMark | undefined;
  }

  putMark(from: string, holdId: string, mark: CreditMark): void {
    this.#put(markKey(from, holdId), mark);
  }

  index(row: HoldRow, holdId: string): void {
    this.#put(expiryKey(row.expiresAtMs, row.from, holdId), { from: row.from, holdId });
  }

  unindex(row: HoldRow, holdId: string): void {
    this.remove(expiryKey(row.expiresAtMs, row.from, holdId));
  }

  /** Schedules a resolved row or mark to be forgotten one retention after `nowMs`. */
  forgetLater(of: 'h' | 'c', from: string, holdId: string, nowMs: number): void {
    this.#put(forgetKey(nowMs + this.retentionMs, of, from, holdId), { from, holdId, of });
  }

  /** Deletes any key of the store (a row, a mark, an index or forget entry). */
  remove(key: string): void {
    this.onWrite?.(key, null);
    this.store.delete(key);
  }

  #put(key: string, value: HoldStoreValue): void {
    this.onWrite?.(key, value);
    this.store.put(key, value);
  }
}
