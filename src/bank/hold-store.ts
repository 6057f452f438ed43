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

const EXPIRY_PREFIX = 'x';
const FORGET_PREFIX = 'f';
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

/** Time-ordered as the expiry index: when a resolved row or mark may be forgotten. */
export function forgetKey(atMs: number, of: 'h' | 'c', from: string, holdId: string): string {
  return `${FORGET_PREFIX}${String(atMs).padStart(EXPIRY_DIGITS, '0')}${of}${dedupKey(from, holdId)}`;
}

/** Typed access to the holds store of one task. */
export class HoldStore {
  readonly store: KeyValueStore<HoldStoreValue>;
  /** How long a resolved hold (and its to-side mark) is kept: the dedup retention. */
  readonly retentionMs: number;

  constructor(context: ProcessorContext, retentionMs: number) {
    this.store = context.getStore('holds');
    this.retentionMs = retentionMs;
  }

  hold(from: string, holdId: string): HoldRow | undefined {
    return this.store.get(holdKey(from, holdId)) as HoldRow | undefined;
  }

  putHold(holdId: string, row: HoldRow): void {
    this.store.put(holdKey(row.from, holdId), row);
  }

  mark(from: string, holdId: string): CreditMark | undefined {
    return this.store.get(markKey(from, holdId)) as CreditMark | undefined;
  }

  putMark(from: string, holdId: string, mark: CreditMark): void {
    this.store.put(markKey(from, holdId), mark);
  }

  index(row: HoldRow, holdId: string): void {
    this.store.put(expiryKey(row.expiresAtMs, row.from, holdId), { from: row.from, holdId });
  }

  unindex(row: HoldRow, holdId: string): void {
    this.store.delete(expiryKey(row.expiresAtMs, row.from, holdId));
  }

  /** Schedules a resolved row or mark to be forgotten one retention after `nowMs`. */
  forgetLater(of: 'h' | 'c', from: string, holdId: string, nowMs: number): void {
    this.store.put(forgetKey(nowMs + this.retentionMs, of, from, holdId), { from, holdId, of });
  }

  /** Index entries of holds due at `nowMs` or before, deadline first, at most `limit`. */
  due(nowMs: number, limit: number): Promise<Array<ExpiryEntry & { key: string }>> {
    return this.#upTo<ExpiryEntry>(EXPIRY_PREFIX, nowMs, limit);
  }

  /** Forget entries due at `nowMs` or before, oldest first, at most `limit`. */
  forgettable(nowMs: number, limit: number): Promise<Array<ForgetEntry & { key: string }>> {
    return this.#upTo<ForgetEntry>(FORGET_PREFIX, nowMs, limit);
  }

  async #upTo<E>(prefix: string, nowMs: number, limit: number): Promise<Array<E & { key: string }>> {
    const entries: Array<E & { key: string }> = [];
    const lt = `${prefix}${String(nowMs + 1).padStart(EXPIRY_DIGITS, '0')}`;
    for await (const [key, entry] of this.store.range({ gte: prefix, lt, limit }))
      entries.push({ ...(entry as E), key });
    return entries;
  }
}

/** Loads keys ahead of synchronous reads outside `process` (a punctuator): the engine's stores can prefetch. */
export async function loadKeys(store: KeyValueStore<unknown>, keys: string[]): Promise<void> {
  const prefetch = (store as { prefetch?: (keys: Iterable<string>) => Promise<void> }).prefetch;
  if (prefetch !== undefined) await prefetch.call(store, keys);
}
