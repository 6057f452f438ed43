// Learns outcomes by tailing transaction_completed, transaction_failed and audit_log (read_committed) from the
// end, on every instance. It serves three things:
//   - `?wait`: a waiter registered BEFORE its command is produced resolves when the matching outcome arrives;
//   - Server-Sent Events: per-account subscribers get each outcome (and account event) of their account;
//   - metrics: outcomes by code and end-to-end latency (requestedAt → completedAt).
// Why Kafka and not Postgres: the outcome is on Kafka as soon as the processor commits, while the sink adds its
// batch delay and may be down or run elsewhere; the tail also feeds SSE. Postgres (src/http/history.ts) is the fallback
// for outcomes decided before this instance started, e.g. an exact duplicate, which gets no second outcome.
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import type { BrokerHealth } from '../kafka/retry.ts';
import type { FetchedRecord } from '../kafka/fetcher.ts';
import type { MoneyCommand } from '../commands/sender.ts';
import { ApiError } from '../problems/errors.ts';
import { LruMap } from '../stores/lru.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { TopicTail } from './topic-tail.ts';

export type OutcomeValue = Record<string, unknown>;

/** One record as delivered to SSE subscribers: `event` is the SSE event name. */
export interface AccountEvent {
  id: string;
  event: 'transaction_completed' | 'transaction_failed' | 'account_event' | 'hold';
  data: OutcomeValue;
}

export type TransferResult = { kind: 'completed' | 'failed' | 'conflict'; value: OutcomeValue };
export type AccountResult = { event: string; code?: string; value: OutcomeValue };

export interface Waiter<T> {
  /** Resolves with the result, or undefined when `timeoutMs` passes first. */
  wait(timeoutMs: number): Promise<T | undefined>;
  /** Resolves the waiter from another source (a Postgres lookup). */
  settle(result: T): void;
  cancel(): void;
}

// Remembered outcomes, so that an exact duplicate sent shortly after the first answers at once.
const RECENT_OUTCOMES_MAX = 10_000;
// Which rejection codes answer which account command (an account's commands share its key, so its audit events are in order).
const REJECTIONS_OF_OPEN = new Set(['account_exists', 'malformed']);
const REJECTIONS_OF_CLOSE = new Set(['account_not_found', 'balance_not_zero', 'account_closed', 'malformed']);

export class OutcomeTracker {
  readonly #config: Config;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #tail: TopicTail;
  readonly #transferWaiters = new Map<string, Set<{ command: MoneyCommand; resolve: (r: TransferResult) => void }>>();
  readonly #accountWaiters = new Map<string, Set<{ kind: 'open' | 'close'; resolve: (r: AccountResult) => void }>>();
  readonly #subscribers = new Map<string, Set<(event: AccountEvent) => void>>();
  /** The value as read and its topic; the answer (with `status`) is built only when a duplicate asks. */
  readonly #recent = new LruMap<string, { value: OutcomeValue; completed: boolean }>(RECENT_OUTCOMES_MAX);
  #waiters = 0;

  constructor(config: Config, logger: Logger, metrics: Metrics, brokerHealth?: BrokerHealth) {
    this.#config = config;
    this.#log = logger.child({ component: 'outcomes' });
    this.#metrics = metrics;
    const { completed, failed, audit } = config.topics;
    const outage = brokerHealth?.outage('api-outcomes', this.#log);
    this.#tail = new TopicTail({
      config,
      logger,
      purpose: 'api-outcomes',
      topics: [completed, failed, audit],
      from: 'end',
      onRecords: (records) => this.#onRecords(records),
      ...(outage ? { outage } : {}),
    });
  }

  async start(): Promise<void> {
    this.#metrics.gaugeOf(
      'bankstream_http_outcome_waiters',
      'Requests waiting for an outcome (?wait)',
      () => this.#waiters,
    );
    await this.#tail.start();
  }

  async close(): Promise<void> {
    await this.#tail.close();
  }

  /** Registers interest in a money command's outcome; call before producing the command. */
  expectTransfer(command: MoneyCommand): Waiter<TransferResult> {
    const recent = this.#recent.peek(command.transferId);
    const entry: { command: MoneyCommand; resolve: (r: TransferResult) => void } = { command, resolve: () => {} };
    const waiter = this.#waiter<TransferResult, typeof entry>(this.#transferWaiters, command.transferId, entry);
    if (recent && sameFields(command, recent.value)) waiter.settle(answerOf(recent.value, recent.completed));
    return waiter;
  }

  /** The latest outcome seen under a transferId (of the last RECENT_OUTCOMES_MAX), with `status`. */
  recentOutcome(transferId: string): OutcomeValue | undefined {
    const recent = this.#recent.peek(transferId);
    return recent ? { ...recent.value, status: recent.completed ? 'completed' : 'failed' } : undefined;
  }

  /** Registers interest in an account command's audit answer; call before producing it. */
  expectAccount(accountId: string, kind: 'open' | 'close'): Waiter<AccountResult> {
    return this.#waiter<AccountResult, { kind: 'open' | 'close'; resolve: (r: AccountResult) => void }>(
      this.#accountWaiters,
      accountId,
      { kind, resolve: () => {} },
    );
  }

  /** Subscribes to an account's events; returns the unsubscribe function. */
  subscribe(accountId: string, listener: (event: AccountEvent) => void): () => void {
    let set = this.#subscribers.get(accountId);
    if (!set) this.#subscribers.set(accountId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#subscribers.delete(accountId);
    };
  }

  #waiter<T, E extends { resolve: (r: T) => void }>(map: Map<string, Set<E>>, key: string, entry: E): Waiter<T> {
    if (this.#waiters >= this.#config.http.waitersMax) {
      throw new ApiError(
        'too_many_requests',
        `more than ${this.#config.http.waitersMax} requests are waiting for outcomes; retry without ?wait`,
        { retryAfterS: 1 },
      );
    }
    this.#waiters++;
    let set = map.get(key);
    if (!set) map.set(key, (set = new Set()));
    let settled: T | undefined;
    let wake: ((r: T | undefined) => void) | undefined;
    let done = false;
    const finish = (result: T | undefined): void => {
      if (done) return;
      done = true;
      this.#waiters--;
      set.delete(entry);
      if (set.size === 0 && map.get(key) === set) map.delete(key);
      settled = result;
      wake?.(result);
    };
    entry.resolve = (result: T) => finish(result);
    set.add(entry);
    return {
      wait: (timeoutMs) =>
        done
          ? Promise.resolve(settled)
          : new Promise<T | undefined>((resolve) => {
              const timer = setTimeout(() => finish(undefined), timeoutMs);
              wake = (result) => {
                clearTimeout(timer);
                resolve(result);
              };
            }),
      settle: (result) => finish(result),
      cancel: () => finish(undefined),
    };
  }

  #onRecords(records: FetchedRecord[]): void {
    for (const record of records) {
      try {
        this.#onRecord(record);
      } catch (error) {
        this.#log.warn(
          { err: error, topic: record.topic, partition: record.partition, offset: String(record.offset) },
          'outcome record skipped',
        );
      }
    }
  }

  #onRecord(record: FetchedRecord): void {
    if (!record.value) return;
    const audit = record.topic === this.#config.topics.audit;
    // An audit record only answers account waiters and SSE subscribers: without any, it is not parsed
    // (about one audit record per command goes by in this process).
    if (audit && this.#accountWaiters.size === 0 && this.#subscribers.size === 0) return;
    const value = JSON.parse(record.value.toString('utf8')) as OutcomeValue;
    if (typeof value !== 'object' || value === null) return;
    const id = `${record.topic}:${record.partition}:${record.offset}`;
    if (audit) {
      this.#onAudit(id, value);
      return;
    }
    const completed = record.topic === this.#config.topics.completed;
    this.#metrics.observeOutcome(
      completed ? 'completed' : 'failed',
      completed ? 'completed' : String(value['code']),
      latencyS(value),
    );
    this.#onOutcome(id, completed, value);
  }

  #onOutcome(id: string, completed: boolean, value: OutcomeValue): void {
    const transferId = value['transferId'];
    if (typeof transferId !== 'string') return;
    const conflict = !completed && value['code'] === 'idempotency_conflict';
    if (!conflict) this.#remember(transferId, { value, completed });
    // Most outcomes have nobody waiting here and no subscriber: their answers are not even built.
    const waiters = this.#transferWaiters.get(transferId);
    if (waiters !== undefined) {
      const result: TransferResult = conflict ? { kind: 'conflict', value } : answerOf(value, completed);
      for (const waiter of [...waiters]) if (sameFields(waiter.command, value)) waiter.resolve(result);
    }
    if (this.#subscribers.size === 0) return;
    const event: AccountEvent = { id, event: completed ? 'transaction_completed' : 'transaction_failed', data: value };
    const accounts = new Set(
      [value['accountId'], value['from'], value['to']].filter((a): a is string => typeof a === 'string'),
    );
    for (const account of accounts) this.#publish(account, event);
    const hold = completed ? holdEvent(id, value) : undefined;
    if (hold) for (const account of accounts) this.#publish(account, hold);
  }

  #onAudit(id: string, value: OutcomeValue): void {
    const event = value['event'];
    const accountId = value['accountId'];
    if (typeof event !== 'string' || !event.startsWith('account_') || typeof accountId !== 'string') return;
    const code = typeof value['code'] === 'string' ? value['code'] : undefined;
    for (const waiter of [...(this.#accountWaiters.get(accountId) ?? [])]) {
      if (accountEventAnswers(waiter.kind, event, code))
        waiter.resolve({ event, ...(code === undefined ? {} : { code }), value });
    }
    this.#publish(accountId, { id, event: 'account_event', data: value });
  }

  #publish(accountId: string, event: AccountEvent): void {
    for (const listener of [...(this.#subscribers.get(accountId) ?? [])]) listener(event);
  }

  #remember(transferId: string, outcome: { value: OutcomeValue; completed: boolean }): void {
    // The last RECENT_OUTCOMES_MAX outcomes seen (reads peek, so the order is the order outcomes arrive).
    this.#recent.set(transferId, outcome);
  }
}

function accountEventAnswers(kind: 'open' | 'close', event: string, code: string | undefined): boolean {
  if (event === 'account_command_rejected')
    return (kind === 'open' ? REJECTIONS_OF_OPEN : REJECTIONS_OF_CLOSE).has(code ?? '');
  return event === (kind === 'open' ? 'account_opened' : 'account_closed');
}

/** An outcome read from transaction_completed (`completed`) or transaction_failed as the result of a wait. */
function answerOf(value: OutcomeValue, completed: boolean): TransferResult {
  return resultOf({ ...value, status: completed ? 'completed' : 'failed' });
}

/** An outcome value (with `status`) as the result of a wait. */
export function resultOf(value: OutcomeValue): TransferResult {
  return { kind: value['status'] === 'completed' ? 'completed' : 'failed', value };
}

/** Whether an outcome answers this command: same type, accounts, amount, currency and reference (the fingerprint). */
export function sameFields(command: MoneyCommand, value: OutcomeValue): boolean {
  if ('holdId' in command) {
    // A completed post or void names the hold's amounts; only an amount the command gave must match.
    if (value['type'] !== command.type || value['holdId'] !== command.holdId || value['from'] !== command.from)
      return false;
    return (
      command.amount === undefined || (value['amount'] === command.amount && value['currency'] === command.currency)
    );
  }
  if (value['type'] !== command.type || value['amount'] !== command.amount || value['currency'] !== command.currency)
    return false;
  if (!('from' in command)) return value['accountId'] === command.accountId;
  return (
    value['from'] === command.from &&
    value['to'] === command.to &&
    (value['reference'] ?? undefined) === command.reference
  );
}

/** A hold's status after a completed outcome of each hold type. */
export const HOLD_STATUS_BY_TYPE: Readonly<Record<string, string>> = {
  hold: 'pending',
  post_hold: 'posted',
  void_hold: 'voided',
  hold_expiry: 'expired',
};

/**
 * A hold's state change as its own SSE event (`event: hold`), besides the transaction_completed of the
 * command that made it: the hold's id, its new status, and the amounts (posted and held for a post).
 */
export function holdEvent(id: string, value: OutcomeValue): AccountEvent | undefined {
  const type = value['type'];
  const status = typeof type === 'string' ? HOLD_STATUS_BY_TYPE[type] : undefined;
  if (status === undefined) return undefined;
  const holdId = type === 'hold' ? value['transferId'] : value['holdId'];
  if (typeof holdId !== 'string') return undefined;
  const data: OutcomeValue = { holdId, status, from: value['from'], to: value['to'] };
  for (const field of ['amount', 'heldAmount', 'currency', 'expiresAt'])
    if (value[field] !== undefined) data[field] = value[field];
  data['by'] = value['transferId'];
  data['at'] = type === 'hold_expiry' ? value['requestedAt'] : value['completedAt'];
  return { id: `${id}:hold`, event: 'hold', data };
}

function latencyS(value: OutcomeValue): number | undefined {
  const requested = Date.parse(String(value['requestedAt']));
  const completed = Date.parse(String(value['completedAt']));
  return Number.isFinite(requested) && Number.isFinite(completed) ? (completed - requested) / 1000 : undefined;
}
