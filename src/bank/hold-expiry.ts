// Hold expiry (README-BANK "Holds: expiry", "Retention of resolved holds"): a wall-clock punctuator that
// never waits for LevelDB, built as the dedup expiry is (expiry.ts): a scan of the holds store runs in the
// background, and the next step applies what it read, within EXPIRY_STEP_BUDGET_MS, corrected by what was
// written since (every write goes through HoldStore, which tells this class).
//
// - Expiry: a step does not expire a hold itself (that needs its row and `from`'s balance, LevelDB reads):
//   it sends a `hold_expire` leg (key from) for each index entry due, at most
//   HOLD_EXPIRIES_PER_PUNCTUATION_MAX per run, and the from task expires the hold when it processes the
//   leg, as a record with the usual prefetch (holds.ts onExpireLeg). A leg acts only on a hold still
//   pending with that deadline and past it, so a hold expires exactly once however often it is asked
//   (a leg sent again after a restart or after HOLD_EXPIRE_RESEND_MS, a late post or void first).
// - Retention: a step forgets resolved rows and marks whose `f` entry is due (at most as many again), from
//   the scan's entries and the rows it read; an entry whose key or row was written since the scan read
//   is left for the next scan.
//
// Crash safety: a scan only reads, and a step's writes and legs go into the task's transaction, so a
// process that dies between scan and apply, or between a leg and its processing, leaves the store as a
// commit left it; the index entries are still there and the next scan asks again (a second leg for a
// hold that expired meanwhile changes nothing).
//
// The one wait: the first step of a task (just started, restored) has no scan yet and waits for its
// first one (bounded like any scan), so that expiry resumes at the first punctuation after a restart.
import { InFlight, threadCpuMs } from '../stores/segment-expiry.ts';
import { nextTurn } from '../stores/segment-purger.ts';
import { KeyNotLoadedError } from '../stores/types.ts';
import type { KeyValueStore } from '../topology/types.ts';
import {
  EXPIRY_PREFIX,
  type CreditMark,
  type ExpiryEntry,
  FORGET_PREFIX,
  type ForgetEntry,
  forgottenKey,
  type HoldRow,
  type HoldStoreValue,
  keyTimeMs,
} from './hold-store.ts';
import { type HoldTask, sendHoldLeg } from './holds.ts';

/** Holds one run asks to expire at most (and resolved rows or marks it forgets at most). */
export const HOLD_EXPIRIES_PER_PUNCTUATION_MAX = 200;
/** Index entries a scan reads, earliest deadline first, due yet or not (the next step may find them due). */
export const HOLD_EXPIRY_SCAN_ENTRIES_MAX = 2 * HOLD_EXPIRIES_PER_PUNCTUATION_MAX;
/** Forget entries a scan reads, earliest first, with the row or mark each names. */
export const HOLD_FORGET_SCAN_ENTRIES_MAX = HOLD_EXPIRIES_PER_PUNCTUATION_MAX;
/** A hold_expire leg whose hold is still indexed this long after (its leg not processed) is sent again. */
export const HOLD_EXPIRE_RESEND_MS = 10_000;
/** Keys remembered as written while a scan is out; beyond this its result is dropped and read again. */
const WRITTEN_KEYS_MAX = 100_000;
/** Entries applied between two looks at the clock. */
const BUDGET_CHECK_EVERY = 32;

export interface HoldExpiryStepResult {
  /** hold_expire legs sent. */
  expiriesRequested: number;
  /** Resolved rows and marks deleted. */
  forgotten: number;
  /** How long the step held the processing loop (its own work; only a task's first step waits for a scan). */
  durationMs: number;
  /** CPU time of the step's thread meanwhile, ms. */
  cpuMs: number;
  /** True for the first step of a task, which waited for its first scan (included in durationMs). */
  waitedForFirstScan: boolean;
  /** Entries the applied scan had read (index + forget), or 0 when none came back since the last step. */
  scannedEntries: number;
  /** Wall time of that scan in the background, start to settle, ms. */
  backgroundMs: number;
  /** True when the step stopped at the budget with due work left (the next scan has it). */
  overBudget: boolean;
}

interface ScanResult {
  expiries: [string, ExpiryEntry][];
  forgets: Array<{ key: string; entry: ForgetEntry; row: HoldRow | CreditMark | undefined }>;
}

interface Scan {
  call: InFlight<ScanResult>;
  /**
   * Keys written since the scan started reading (set then): an index key's new entry, or null (deleted);
   * other keys are only marked (null). Undefined until the read starts.
   */
  written: Map<string, ExpiryEntry | null> | undefined;
  overflowed: boolean;
}

export class HoldExpiry {
  readonly #task: HoldTask;
  readonly #budgetMs: number;
  readonly #limit: number;
  #scan: Scan | undefined;
  #started = false;
  /** Index keys a leg was sent for, with the task's time then; dropped when the index entry goes. */
  readonly #requested = new Map<string, number>();

  constructor(task: HoldTask, budgetMs: number, limit = HOLD_EXPIRIES_PER_PUNCTUATION_MAX) {
    this.#task = task;
    this.#budgetMs = budgetMs;
    this.#limit = limit;
    task.holds.onWrite = (key, value) => this.#written(key, value);
  }

  /** One run. Synchronous, except a task's first, which waits for its first scan. */
  punctuate(timestampMs: number): HoldExpiryStepResult | Promise<HoldExpiryStepResult> {
    if (this.#started) return this.#step(timestampMs, false);
    this.#started = true;
    const waitStarted = performance.now();
    const scan = this.#startScan();
    return scan.call.settled.then(() => {
      const result = this.#step(timestampMs, true);
      return { ...result, durationMs: performance.now() - waitStarted };
    });
  }

  /** Settles once no scan is running (tests, benchmarks; the loop never waits for it). */
  idle(): Promise<void> {
    return this.#scan?.call.settled ?? Promise.resolve();
  }

  #step(timestampMs: number, first: boolean): HoldExpiryStepResult {
    const started = performance.now();
    const cpuStarted = threadCpuMs();
    const task = this.#task;
    task.out.begin(null, null, timestampMs, {});
    const nowMs = task.out.nowMs;
    const result: HoldExpiryStepResult = {
      expiriesRequested: 0,
      forgotten: 0,
      durationMs: 0,
      cpuMs: 0,
      waitedForFirstScan: first,
      scannedEntries: 0,
      backgroundMs: 0,
      overBudget: false,
    };
    for (const [key, at] of this.#requested) if (nowMs - at >= HOLD_EXPIRE_RESEND_MS) this.#requested.delete(key);
    const scan = this.#scan;
    if (scan?.call.done) {
      try {
        const read = scan.call.take();
        result.scannedEntries = read.expiries.length + read.forgets.length;
        result.backgroundMs = scan.call.settledAtMs - scan.call.startedAtMs;
        if (!scan.overflowed) {
          const within = (): boolean => performance.now() - started < this.#budgetMs;
          // Still the scan in #scan while it is applied: this step's own writes count as written since.
          const written = scan.written!;
          result.expiriesRequested = this.#requestExpiries(read, written, nowMs, within);
          result.forgotten = this.#forget(read, written, nowMs, within);
          result.overBudget = !within();
        }
      } finally {
        // A failed scan (or step) is not taken again: the next step starts a new one.
        this.#scan = undefined;
      }
    }
    if (this.#scan === undefined) this.#startScan();
    result.durationMs = performance.now() - started;
    result.cpuMs = threadCpuMs() - cpuStarted;
    return result;
  }

  /** Sends hold_expire for the due index entries: the scan's, less those written since, plus those added since. */
  #requestExpiries(
    read: ScanResult,
    written: Map<string, ExpiryEntry | null>,
    nowMs: number,
    within: () => boolean,
  ): number {
    const due: [string, ExpiryEntry][] = [];
    for (const entry of read.expiries) if (!written.has(entry[0]) && keyTimeMs(entry[0]) <= nowMs) due.push(entry);
    let added = false;
    for (const [key, entry] of written) {
      if (entry === null || keyTimeMs(key) > nowMs) continue;
      due.push([key, entry]);
      added = true;
    }
    if (added) due.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    let sent = 0;
    for (let i = 0; i < due.length && sent < this.#limit; i++) {
      if (i % BUDGET_CHECK_EVERY === 0 && !within()) break;
      const [key, { from, holdId }] = due[i]!;
      if (this.#requested.has(key)) continue;
      sendHoldLeg(this.#task, { leg: 'hold_expire', holdId, from, expiresAtMs: keyTimeMs(key) });
      this.#requested.set(key, nowMs);
      sent += 1;
    }
    return sent;
  }

  /**
   * Deletes the rows and marks whose retention has passed (with their forget entries); returns how many.
   * A row or mark that is live again (a post still settling, a pending one) is kept: a settling post is
   * looked at again one retention later.
   */
  #forget(read: ScanResult, written: Map<string, ExpiryEntry | null>, nowMs: number, within: () => boolean): number {
    const holds = this.#task.holds;
    let forgotten = 0;
    let applied = 0;
    for (const { key, entry, row } of read.forgets) {
      if (keyTimeMs(key) > nowMs || applied >= this.#limit) break;
      const rowKey = forgottenKey(entry);
      // Written since the scan read it (by a record, or by this loop for an earlier entry): read again next time.
      if (written.has(key) || written.has(rowKey)) continue;
      if (applied % BUDGET_CHECK_EVERY === 0 && !within()) break;
      applied += 1;
      holds.remove(key);
      if (entry.of === 'h') {
        const hold = row as HoldRow | undefined;
        if (hold === undefined || hold.status === 'pending' || hold.status === 'opening') continue;
        if (hold.settling === true) {
          holds.forgetLater('h', entry.from, entry.holdId, nowMs);
          continue;
        }
      } else {
        const mark = row as CreditMark | undefined;
        if (mark === undefined || mark.status === 'pending') continue;
      }
      holds.remove(rowKey);
      forgotten += 1;
    }
    return forgotten;
  }

  #startScan(): Scan {
    const scan: Scan = { call: undefined as unknown as InFlight<ScanResult>, written: undefined, overflowed: false };
    scan.call = new InFlight(this.#read(scan));
    this.#scan = scan;
    return scan;
  }

  async #read(scan: Scan): Promise<ScanResult> {
    // Not even the iterators' creation runs inside the step that asked for the scan.
    await nextTurn();
    // From here on every write is remembered: whatever the reads below see, a later write is known.
    scan.written = new Map();
    const store = this.#task.holds.store;
    const expiries = await firstEntries<ExpiryEntry>(store, EXPIRY_PREFIX, HOLD_EXPIRY_SCAN_ENTRIES_MAX);
    const entries = await firstEntries<ForgetEntry>(store, FORGET_PREFIX, HOLD_FORGET_SCAN_ENTRIES_MAX);
    const rows = await Promise.all(entries.map(([, entry]) => readValue(store, forgottenKey(entry))));
    return {
      expiries,
      forgets: entries.map(([key, entry], i) => ({ key, entry, row: rows[i] as HoldRow | CreditMark | undefined })),
    };
  }

  #written(key: string, value: HoldStoreValue | null): void {
    if (value === null && key.startsWith(EXPIRY_PREFIX)) this.#requested.delete(key);
    const scan = this.#scan;
    if (scan?.written === undefined || scan.overflowed) return;
    scan.written.set(key, value !== null && key.startsWith(EXPIRY_PREFIX) ? (value as ExpiryEntry) : null);
    if (scan.written.size > WRITTEN_KEYS_MAX) {
      scan.overflowed = true;
      scan.written.clear();
    }
  }
}

/** The first `limit` entries whose key starts with the one-character `prefix`, in key order. */
async function firstEntries<E>(
  store: KeyValueStore<HoldStoreValue>,
  prefix: string,
  limit: number,
): Promise<[string, E][]> {
  const end = String.fromCharCode(prefix.charCodeAt(0) + 1);
  const entries: [string, E][] = [];
  for await (const [key, value] of store.range({ gte: prefix, lt: end, limit })) entries.push([key, value as E]);
  return entries;
}

/**
 * A key's value now, without prefetch (which the loop's own batches use): from the transaction's writes
 * or the cache when there, else the committed value (nothing uncommitted names the key at this moment,
 * and any later write is remembered by the scan).
 */
async function readValue(store: KeyValueStore<HoldStoreValue>, key: string): Promise<HoldStoreValue | undefined> {
  try {
    return store.get(key);
  } catch (error) {
    if (!(error instanceof KeyNotLoadedError)) throw error;
  }
  const readCommitted = (store as { readCommitted?: (key: string) => Promise<HoldStoreValue | undefined> })
    .readCommitted;
  if (readCommitted === undefined) throw new Error('hold expiry: the holds store cannot read committed values');
  return readCommitted.call(store, key);
}
