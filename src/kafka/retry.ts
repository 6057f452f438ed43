// Waiting out broker outages. Every wait on the broker that a long-running part of an instance makes
// (group join and rejoin, coordinator lookup, metadata, InitProducerId, committed offsets, the sink's
// and the API tails' fetches, restore and standby fetches) goes through `retryUntilStopped` at the
// part's boundary: the step is started again, with a bounded backoff per attempt and no bound on the
// number of attempts, until the broker answers or the part is told to stop. Only errors that waiting
// cannot heal (authorization, TLS trust, a fenced producer, missing or misconfigured topics) end it,
// with a message naming them.
//
// Why at the boundary and not inside @platformatic/kafka: the client has a fixed retry count for
// every request (`retries`, `retryDelay`), and in places its own fixed count on top (the consumer's
// #retryJoinGroup gives up after `retries` JoinGroup attempts, then emits 'error' and stops
// heartbeating). Raising `retries` to infinity there would also retry requests that must fail fast
// (a send inside a transaction whose timeout runs out, a close). So the library keeps its small
// counts, and the step that failed is started again here, from a state the caller knows.
//
// Each part reports to one `BrokerOutage` (one per component: streams, sink, tails, standby), so an
// outage is logged at a low rate (its first failure, then once per `logEveryMs`, then its end), is a
// metric (bankstream_broker_unavailable_seconds{component}), and makes /readyz answer not ready.
import type { Logger } from 'pino';
import { FatalStreamsError, findInErrorTree, isFencedError, kafkaErrorIds } from './errors.ts';
import { isProducerFencedError } from './producer.ts';
import type { KafkaSecurityConfig } from '../config/config.ts';
import type { KafkaSecurityOptions } from './clients.ts';
import { explainKafkaError } from './security.ts';

/** Exponential backoff with jitter, bounded per attempt; attempts are not bounded. */
export interface Backoff {
  initialMs: number;
  /** The longest pause between two attempts. */
  maxMs: number;
  multiplier: number;
  /** Each pause is shortened by up to this fraction, at random, so that instances do not retry in step. */
  jitterRatio: number;
}

export const BROKER_BACKOFF: Backoff = { initialMs: 100, maxMs: 5_000, multiplier: 2, jitterRatio: 0.3 };

/** How often a continuing outage is logged again (the first failure is always logged). */
export const OUTAGE_LOG_EVERY_MS = 30_000;

export function backoffDelayMs(backoff: Backoff, attempt: number, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt, 0), 30);
  const full = Math.min(backoff.maxMs, backoff.initialMs * backoff.multiplier ** exponent);
  return Math.max(0, Math.round(full * (1 - backoff.jitterRatio * random())));
}

/** The part was told to stop while it waited for the broker. */
export class StoppedError extends Error {
  readonly code = 'stopped';
  constructor(step: string) {
    super(`stopped while waiting for the broker (${step})`);
    this.name = 'StoppedError';
  }
}

export interface OutageInfo {
  component: string;
  /** When the first failed attempt of this outage happened (epoch ms). */
  sinceMs: number;
  retries: number;
  step: string;
  lastError: string;
}

/** One component's view of the broker: healthy, or unavailable since a moment, with its failed attempts. */
export class BrokerOutage {
  readonly component: string;
  readonly #log: Logger | undefined;
  readonly #logEveryMs: number;
  readonly #nowMs: () => number;
  #current: OutageInfo | undefined;
  #lastLogMs = 0;
  #retriesTotal = 0;
  #outagesTotal = 0;

  constructor(component: string, options: { log?: Logger; logEveryMs?: number; nowMs?: () => number } = {}) {
    this.component = component;
    this.#log = options.log;
    this.#logEveryMs = options.logEveryMs ?? OUTAGE_LOG_EVERY_MS;
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** A broker call of `step` failed and will be retried in `retryInMs`. */
  failed(step: string, error: unknown, retryInMs: number): void {
    const now = this.#nowMs();
    this.#retriesTotal++;
    const message = describe(error);
    if (!this.#current) {
      this.#outagesTotal++;
      this.#current = { component: this.component, sinceMs: now, retries: 0, step, lastError: message };
      this.#lastLogMs = now;
      this.#log?.warn(
        { component: this.component, step, err: error, retryInMs, hint: hintFor(error) },
        'broker unavailable; retrying until it answers',
      );
    }
    const current = this.#current;
    current.retries++;
    current.step = step;
    current.lastError = message;
    if (now - this.#lastLogMs >= this.#logEveryMs) {
      this.#lastLogMs = now;
      this.#log?.warn(
        {
          component: this.component,
          step,
          err: error,
          unavailableForMs: now - current.sinceMs,
          retries: current.retries,
          retryInMs,
        },
        'broker still unavailable; retrying',
      );
    }
  }

  /** A broker call succeeded: the outage, if any, is over. */
  recovered(): void {
    const current = this.#current;
    if (!current) return;
    this.#current = undefined;
    this.#log?.info(
      { component: this.component, unavailableForMs: this.#nowMs() - current.sinceMs, retries: current.retries },
      'broker answers again',
    );
  }

  get unavailable(): OutageInfo | undefined {
    return this.#current ? { ...this.#current } : undefined;
  }

  /** Seconds of the current outage; 0 when the broker answers. */
  unavailableSeconds(): number {
    return this.#current ? (this.#nowMs() - this.#current.sinceMs) / 1000 : 0;
  }

  get retriesTotal(): number {
    return this.#retriesTotal;
  }

  get outagesTotal(): number {
    return this.#outagesTotal;
  }
}

/** The broker outages of one instance's parts: for /readyz and /metrics. */
export class BrokerHealth {
  readonly #outages = new Map<string, BrokerOutage>();
  readonly #log: Logger | undefined;

  constructor(log?: Logger) {
    this.#log = log;
  }

  /** The component's outage tracker (one per name). */
  outage(component: string, log?: Logger): BrokerOutage {
    let outage = this.#outages.get(component);
    if (!outage) {
      const logger = log ?? this.#log;
      outage = new BrokerOutage(component, logger ? { log: logger } : {});
      this.#outages.set(component, outage);
    }
    return outage;
  }

  components(): BrokerOutage[] {
    return [...this.#outages.values()];
  }

  /** Components that wait for the broker right now. */
  unavailable(): OutageInfo[] {
    return this.components().flatMap((o) => (o.unavailable ? [o.unavailable] : []));
  }
}

export interface RetryOptions {
  /** Names the step in logs and in the outage ("joinGroup", "initProducerId", …). */
  step: string;
  outage: BrokerOutage;
  /** Aborting it ends the wait with StoppedError. */
  signal?: AbortSignal;
  backoff?: Backoff;
  /** The error that ends the retries (it is thrown instead), or undefined to retry. Default: permanentKafkaError. */
  permanent?: (error: unknown) => Error | undefined;
}

/**
 * Runs `step` until it succeeds, the signal aborts (StoppedError) or it fails with an error that waiting
 * cannot heal (that error, as `permanent` maps it). Attempts are not bounded; each pause is.
 */
export async function retryUntilStopped<T>(step: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const backoff = options.backoff ?? BROKER_BACKOFF;
  const permanent = options.permanent ?? ((error: unknown) => permanentKafkaError(error));
  for (let attempt = 0; ; attempt++) {
    if (options.signal?.aborted) throw new StoppedError(options.step);
    try {
      const result = await step(attempt);
      options.outage.recovered();
      return result;
    } catch (error) {
      if (options.signal?.aborted) throw new StoppedError(options.step);
      const fatal = permanent(error);
      if (fatal) throw fatal;
      const delayMs = backoffDelayMs(backoff, attempt);
      options.outage.failed(options.step, error, delayMs);
      await sleepUnlessStopped(delayMs, options.signal);
    }
  }
}

/** Waits `ms`, or less when the signal aborts. Never rejects. */
export function sleepUnlessStopped(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

// Broker answers that say "not now" (leaders moving, a coordinator loading, a broker starting), and
// the client's and the OS's words for an unreachable or silent broker.
const UNAVAILABLE_API_IDS = new Set([
  'COORDINATOR_LOAD_IN_PROGRESS',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_OR_FOLLOWER',
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'KAFKA_STORAGE_ERROR',
  'UNSTABLE_OFFSET_COMMIT',
  'CONCURRENT_TRANSACTIONS',
  'BROKER_NOT_AVAILABLE',
  'REPLICA_NOT_AVAILABLE',
  'FETCH_SESSION_ID_NOT_FOUND',
  'UNKNOWN_LEADER_EPOCH',
  'FENCED_LEADER_EPOCH',
  'OFFSET_NOT_AVAILABLE',
  'THROTTLING_QUOTA_EXCEEDED',
]);
const UNAVAILABLE_CODES = new Set([
  'PLT_KFK_NETWORK',
  'PLT_KFK_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
]);
const UNAVAILABLE_MESSAGES =
  /Connection closed|timed out|did not become stable|is not in the metadata|no metadata for|socket hang up|Connection to \S+ failed/i;

/** True when `error` says the broker is unreachable, silent or not ready yet: waiting heals it. */
export function isBrokerUnavailable(error: unknown): boolean {
  for (const id of kafkaErrorIds(error)) if (UNAVAILABLE_API_IDS.has(id)) return true;
  return (
    findInErrorTree(error, (node) => {
      if (typeof node.code === 'string' && UNAVAILABLE_CODES.has(node.code)) return true;
      if (typeof node.message === 'string' && UNAVAILABLE_MESSAGES.test(node.message)) return true;
      return undefined;
    }) ?? false
  );
}

/**
 * The error to stop with when `error` cannot heal by waiting, else undefined: a fenced producer, a
 * FatalStreamsError (topics missing or not co-partitioned), a missing topic, or a security failure
 * (authentication, authorization, TLS trust) as explainKafkaError words it. A bare "Connection closed"
 * is not one: that is also what a broker going down looks like (explainKafkaError's hint about TLS or
 * SASL is logged with the outage instead).
 */
export function permanentKafkaError(
  error: unknown,
  security?: KafkaSecurityConfig | KafkaSecurityOptions,
): Error | undefined {
  if (error instanceof FatalStreamsError || error instanceof StoppedError) return error;
  // Security first: TRANSACTIONAL_ID_AUTHORIZATION_FAILED also counts as fencing, but the fix is an ACL.
  const access = explainKafkaError(error, security);
  if (access && !access.mayHeal) return access;
  if (isFencedError(error) || isProducerFencedError(error)) {
    return new FatalStreamsError(
      'producer_fenced',
      'this instance was fenced by a newer one with the same transactional id',
      { cause: error },
    );
  }
  const unknownTopic = findInErrorTree(error, (node) =>
    typeof node.message === 'string' && /^Unknown topic /.test(node.message) ? node.message : undefined,
  );
  if (unknownTopic)
    return new FatalStreamsError(
      'topics_missing',
      `${unknownTopic} Create the topics with \`bankstream topics create\``,
      { cause: error },
    );
  return undefined;
}

function hintFor(error: unknown): string | undefined {
  const access = explainKafkaError(error);
  return access?.mayHeal ? access.message : undefined;
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    const last = error.errors[error.errors.length - 1] as { message?: unknown };
    return `${error.message} (last: ${String(last?.message ?? last)})`.slice(0, 500);
  }
  return (error instanceof Error ? error.message : String(error)).slice(0, 500);
}
