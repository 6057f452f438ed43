// Step 2 of a transfer's path (README-BANK.md): the bank Processor. It parses a record once, names the
// store keys it will read (prefetch), then dispatches: account commands and deposits/withdrawals to
// accounts.ts, transfers and their legs to transfer.ts. Every money command passes the idempotency gate first.
import { createHash } from 'node:crypto';
import type { PrefetchCollector, Processor, ProcessorContext, Rec, Serde } from '../topology/types.ts';
import {
  type MoneyCommand,
  parseCommand,
  type ParsedCommand,
  type TransferFields,
  transferFieldsOf,
} from './commands.ts';
import { keyText, TIMESTAMP_MS_MAX, TIMESTAMP_MS_MIN } from './input-rules.ts';
import { closeAccount, openAccount, singleLeg } from './accounts.ts';
import type { ExpiryStepBounds, ExpiryStepResult } from '../stores/segmented-store.ts';
import { DEFAULT_EXPIRY_BOUNDS, DedupExpiry } from './expiry.ts';
import { type Leg, parseLeg } from './legs.ts';
import { Outputs } from './outcomes.ts';
import { type BankTask, actedAccount, recordFinal } from './decide.ts';
import { BankStores, dedupVerdict, creditedKey, prefetchKeys, defaultDedupSegmentIntervalMs } from './stores.ts';
import { credit, debit, refund, settle } from './transfer.ts';
import { collectHoldKeys, type HoldWork, parseHoldLegRecord, parseHoldRecord, processHold } from './hold-dispatch.ts';
import { HoldExpiry, type HoldExpiryStepResult } from './hold-expiry.ts';
import { HoldStore } from './hold-store.ts';
import type { HoldTask } from './holds.ts';

export interface BankProcessorOptions {
  dedupRetentionMs: number;
  /** Width of one segment of the transfers store (default: half the retention). */
  dedupSegmentIntervalMs?: number;
  /** How often a bounded expiry step runs, in wall-clock ms (about once per commit). */
  punctuateIntervalMs: number;
  /** Bounds of one expiry step (see expiry.ts). */
  expiry?: Partial<ExpiryStepBounds>;
  /** Told the outcome of every expiry step (metrics, benchmarks). */
  onExpiryStep?: (result: ExpiryStepResult, partition: number) => void;
  /** Told the outcome of every hold expiry step (benchmarks). */
  onHoldExpiryStep?: (result: HoldExpiryStepResult, partition: number) => void;
}

/**
 * The value of a record read from the credits topic. Its source's serde wraps the bytes, so the
 * processor tells legs from commands by where they came from, never by their content: a command
 * shaped like a leg on the input topic must not be able to create money.
 */
export interface LegBytes {
  readonly legBytes: Buffer;
}

export const legBytesSerde: Serde<LegBytes> = {
  serialize: (value) => value.legBytes,
  deserialize: (bytes) => ({ legBytes: bytes }),
};

type BankRecord = Rec<Buffer | null, Buffer | LegBytes | null>;

/** A record, parsed once for both prefetch and process. */
type Work =
  | {
      readonly kind: 'command';
      readonly parsed: ParsedCommand;
      readonly toIsLocal: boolean;
      readonly recordKey: string;
    }
  | { readonly kind: 'leg'; readonly leg: Leg | { error: string } }
  | HoldWork;

// Kafka timestamps may be -1 (none) or anything a producer chose; a record timestamp stands in for a
// missing requestedAt only inside years 1000–9999 (what every later stage prints and parses alike),
// otherwise the task's clock does.

export class BankProcessor implements Processor<Buffer | null, Buffer | LegBytes | null> {
  readonly #options: BankProcessorOptions;
  // Parsed records by the identity of their value bytes: the engine deserializes a record once for
  // prefetch and again for process, but both hold the same Buffer, so JSON is parsed only once.
  readonly #parsed = new WeakMap<Buffer, Work>();
  #context: ProcessorContext | undefined;
  #task: HoldTask | undefined;
  #holdExpiry: HoldExpiry | undefined;

  constructor(options: BankProcessorOptions) {
    this.#options = options;
  }

  init(context: ProcessorContext): void {
    this.#context = context;
    const retentionMs = this.#options.dedupRetentionMs;
    const stores = new BankStores(context, {
      retentionMs,
      segmentIntervalMs: this.#options.dedupSegmentIntervalMs ?? defaultDedupSegmentIntervalMs(retentionMs),
    });
    const out = new Outputs(context);
    this.#task = {
      stores,
      out,
      ownsAccount: (accountId) => context.partitionForKey(accountId) === context.partition,
      holds: new HoldStore(context, retentionMs),
    };
    const expiry = new DedupExpiry(stores.transfers, { ...DEFAULT_EXPIRY_BOUNDS, ...this.#options.expiry });
    const onStep = this.#options.onExpiryStep;
    // Synchronous: nothing of dedup expiry is awaited by the loop (expiry.ts).
    context.schedule(this.#options.punctuateIntervalMs, 'wall-clock', () => {
      const result = expiry.step();
      onStep?.(result, context.partition);
    });
    // Synchronous too, but for a task's first run, which waits for its first scan (hold-expiry.ts).
    const holdExpiry = new HoldExpiry(this.#task, { ...DEFAULT_EXPIRY_BOUNDS, ...this.#options.expiry }.budgetMs);
    this.#holdExpiry = holdExpiry;
    const onHoldStep = this.#options.onHoldExpiryStep;
    context.schedule(this.#options.punctuateIntervalMs, 'wall-clock', (timestampMs) => {
      const result = holdExpiry.punctuate(timestampMs);
      if (!(result instanceof Promise)) onHoldStep?.(result, context.partition);
      else return result.then((done) => onHoldStep?.(done, context.partition));
    });
  }

  /** Settles once the expiry steps' background LevelDB calls are done (test driver, benchmarks). */
  async idle(): Promise<void> {
    await Promise.all([this.#task!.stores.transfers.expiryIdle(), this.#holdExpiry!.idle()]);
  }

  prefetch(rec: BankRecord, keys: PrefetchCollector): void {
    const bytes = valueBytes(rec);
    if (bytes === null) return;
    const work = this.#parse(rec, bytes);
    this.#parsed.set(bytes, work);
    if (work.kind === 'hold' || work.kind === 'hold_leg') collectHoldKeys(work, keys, this.#task!.stores.transfers);
    else collectKeys(work, keys, this.#task!.stores.transfers);
  }

  process(rec: BankRecord): void {
    const task = this.#task!;
    const bytes = valueBytes(rec);
    task.out.begin(rec.key, bytes, rec.timestamp, rec.headers);
    if (bytes === null) {
      task.out.deadLetter('record value is null');
      return;
    }
    const work = this.#parsed.get(bytes) ?? this.#parse(rec, bytes);
    this.#parsed.delete(bytes);
    if (work.kind === 'hold' || work.kind === 'hold_leg') {
      processHold(task, work, bytes, rec.timestamp);
      return;
    }
    if (work.kind === 'leg') {
      if ('error' in work.leg) task.out.deadLetter(work.leg.error);
      else dispatchLeg(task, work.leg);
      return;
    }
    const parsed = work.parsed;
    if (parsed.kind === 'dead_letter') task.out.deadLetter(parsed.error);
    else if (parsed.kind === 'account_rejected') {
      task.out.audit({
        event: 'account_command_rejected',
        accountId: parsed.accountId,
        code: 'malformed',
        reason: parsed.reason,
      });
    } else if (parsed.kind === 'money_rejected') {
      // Deduplicated under the record key, the account whose partition decides it, whatever the body says.
      if (admit(task, work.recordKey, parsed.fields.transferId, parsed.fingerprint, () => parsed.fields)) {
        recordFinal(task, work.recordKey, parsed.fields.transferId, parsed.fingerprint, 'failed', parsed.code);
        task.out.failed(parsed.fields, parsed.code, parsed.reason);
      }
    } else if (parsed.command.type === 'open_account') openAccount(task, parsed.command);
    else if (parsed.command.type === 'close_account') closeAccount(task, parsed.command);
    else dispatchMoney(task, parsed.command, work.toIsLocal);
  }

  #parse(rec: BankRecord, bytes: Buffer): Work {
    const key = rec.key;
    const owns = this.#task!.ownsAccount;
    if (!Buffer.isBuffer(rec.value))
      return parseHoldLegRecord(key, bytes, owns) ?? { kind: 'leg', leg: parseLeg(key, bytes) };
    const usable =
      Number.isSafeInteger(rec.timestamp) && rec.timestamp >= TIMESTAMP_MS_MIN && rec.timestamp <= TIMESTAMP_MS_MAX;
    const timestampMs = usable ? rec.timestamp : this.#context!.currentSystemTimeMs();
    const parsed = parseCommand(key, bytes, timestampMs);
    // Hold commands are unknown to commands.ts: only its dead letters are parsed again, as holds.
    if (parsed.kind === 'dead_letter') {
      const hold = parseHoldRecord(key, bytes, timestampMs, dedupScopeOfKey(key), owns);
      if (hold !== undefined) return hold;
    }
    const toIsLocal =
      parsed.kind === 'command' && parsed.command.type === 'transfer' && this.#task!.ownsAccount(parsed.command.to);
    return { kind: 'command', parsed, toIsLocal, recordKey: dedupScopeOfKey(key) };
  }
}

/** A record key longer than any id is kept as its digest in a dedup scope (it can only be a wrong key). */
const SCOPE_KEY_BYTES_MAX = 1024;

/**
 * The idempotency scope of a command refused as malformed: its record key, the account whose partition
 * decided it. A key that is no text (null, not UTF-8) or longer than any id gets a NUL-prefixed stand-in,
 * which no valid account id can equal (ids hold no control characters) and every store can keep.
 */
function dedupScopeOfKey(key: Buffer | null): string {
  if (key === null) return '';
  if (key.length > SCOPE_KEY_BYTES_MAX) return `\u0000sha256:${createHash('sha256').update(key).digest('hex')}`;
  const text = keyText(key);
  return typeof text === 'string' ? text : `\u0000bytes:${key.toString('hex')}`;
}

function valueBytes(rec: BankRecord): Buffer | null {
  if (rec.value === null || rec.value === undefined) return null;
  return Buffer.isBuffer(rec.value) ? rec.value : rec.value.legBytes;
}

/** Exactly the keys the record's handler will read; nothing for records that go to the DLQ. */
function collectKeys(work: Exclude<Work, HoldWork>, keys: PrefetchCollector, transfers: BankStores['transfers']): void {
  const { account, dedup } = prefetchKeys(keys, transfers);
  if (work.kind === 'leg') {
    if ('error' in work.leg) return;
    if (work.leg.leg === 'credit') {
      account(work.leg.to);
      // The credited mark lives in the segmented view: read wherever it may be (pinned, live segments).
      for (const key of transfers.keysFor(creditedKey(work.leg.from, work.leg.transferId))) keys.add('transfers', key);
    } else {
      dedup(work.leg.from, work.leg.transferId);
      keys.add('balances', work.leg.from);
    }
    return;
  }
  const parsed = work.parsed;
  if (parsed.kind === 'money_rejected') dedup(work.recordKey, parsed.fields.transferId);
  if (parsed.kind !== 'command') return;
  const command = parsed.command;
  if (command.type === 'open_account') keys.add('accounts', command.accountId);
  else if (command.type === 'close_account') account(command.accountId);
  else if (command.type === 'transfer') {
    dedup(command.from, command.transferId);
    account(command.from);
    if (work.toIsLocal && command.to !== command.from) account(command.to);
  } else {
    dedup(command.accountId, command.transferId);
    account(command.accountId);
  }
}

function dispatchMoney(task: BankTask, command: MoneyCommand, toIsLocal: boolean): void {
  if (!admit(task, actedAccount(command), command.transferId, command.fingerprint, () => transferFieldsOf(command)))
    return;
  if (command.type === 'transfer') debit(task, command, toIsLocal);
  else singleLeg(task, command);
}

function dispatchLeg(task: BankTask, leg: Leg): void {
  if (leg.leg === 'credit') credit(task, leg);
  else if (leg.leg === 'settle') settle(task, leg);
  else refund(task, leg);
}

/**
 * The idempotency gate: true when (account, transferId) is new; the same transferId on another
 * account is another command. An exact duplicate (same fingerprint) gets no answer, whatever state
 * the first one reached; a conflicting one gets one `idempotency_conflict` (remembered, so a replay
 * of it is silent too) and changes nothing else.
 */
function admit(
  task: BankTask,
  account: string,
  transferId: string,
  fingerprint: string,
  fields: () => TransferFields,
): boolean {
  const verdict = dedupVerdict(task.stores.transfers, account, transferId, fingerprint);
  if (verdict === 'new') return true;
  if (verdict !== 'duplicate') task.out.failed(fields(), 'idempotency_conflict', verdict.conflict);
  return false;
}
