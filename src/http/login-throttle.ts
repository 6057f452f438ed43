// Throttling of POST /v1/auth/token (issue 15), so that guessing is slow and one attacker locks nobody else out.
//   - per (username, client address): LOGIN_FAILURES_FREE failures in a row, then an exponential backoff
//     (1 s, 2 s, 4 s … up to LOGIN_BACKOFF_MAX_S) during which that pair is answered 429 + Retry-After
//     without a password check; a success resets it. An attacker slows only their own guesses.
//   - per client address, any username (credential stuffing): LOGIN_FAILURES_PER_CLIENT_PER_HOUR.
//   - per username, any address (a distributed attack on one account): LOGIN_FAILURES_PER_USER_PER_HOUR.
//     This one can delay that one account's logins while such an attack runs; never another account's.
// Counters are rate-limiter-flexible's in-memory limiters (expiring keys, well tested), per instance: with N
// instances behind a balancer an attacker gets at most N times the budget. Keys only appear on a failed
// password check, which the bounded check pool below limits to a few per second, so memory stays small.
// Password checks (scrypt, on the libuv pool that LevelDB shares) run PASSWORD_CHECKS_MAX at a time, the
// others wait in a bounded FIFO queue, and one client address has at most CLIENT_CHECKS_MAX of them: a
// flood from one client is refused (429) instead of filling the queue that other clients' logins wait in.
import { isIP } from 'node:net';
import type { Counter } from 'prom-client';
import { RateLimiterMemory, type RateLimiterRes } from 'rate-limiter-flexible';
import type { HttpConfig } from '../config/config.ts';
import { ApiError } from '../problems/errors.ts';
import type { Metrics } from '../metrics/metrics.ts';

const PASSWORD_CHECKS_MAX = 2;
const CHECK_QUEUE_MAX = 64;
const CHECK_QUEUE_WAIT_MS = 10_000;
const CLIENT_CHECKS_MAX = 2;
/** The window in which failures in a row count as "in a row" (then they are forgotten). */
const CONSECUTIVE_WINDOW_S = 24 * 3600;
const HOUR_S = 3600;

export class LoginThrottle {
  readonly #config: HttpConfig;
  readonly #consecutive: RateLimiterMemory;
  readonly #penaltyBox: RateLimiterMemory;
  readonly #perClient: RateLimiterMemory;
  readonly #perUser: RateLimiterMemory;
  readonly #checks = new CheckPool(PASSWORD_CHECKS_MAX, CHECK_QUEUE_MAX, CHECK_QUEUE_WAIT_MS);
  readonly #clientChecks = new Map<string, number>();
  readonly #refused: Counter<'reason'> | undefined;

  /** `metrics` counts the refused attempts (bankstream_http_logins_throttled_total{reason}): an alert on brute force. */
  constructor(config: HttpConfig, metrics?: Metrics) {
    this.#config = config;
    this.#refused = metrics?.counter({
      name: 'bankstream_http_logins_throttled_total',
      help: 'Login attempts refused by the throttle, by reason',
      labelNames: ['reason'],
    });
    this.#consecutive = new RateLimiterMemory({
      keyPrefix: 'login-consecutive',
      points: Number.MAX_SAFE_INTEGER,
      duration: CONSECUTIVE_WINDOW_S,
    });
    this.#penaltyBox = new RateLimiterMemory({ keyPrefix: 'login-backoff', points: 1, duration: 1 });
    this.#perClient = new RateLimiterMemory({
      keyPrefix: 'login-client',
      points: config.loginFailuresPerClientPerHour,
      duration: HOUR_S,
    });
    this.#perUser = new RateLimiterMemory({
      keyPrefix: 'login-user',
      points: config.loginFailuresPerUserPerHour,
      duration: HOUR_S,
    });
  }

  /**
   * Runs one password check for `username` from `client` unless a throttle holds; throws 429 + Retry-After
   * (code login_throttled) when one does. `check` resolves true for a valid login.
   */
  async attempt(username: string, client: string, check: () => Promise<boolean>): Promise<boolean> {
    const keys = throttleKeys(username, client);
    await this.#refuseIfThrottled(keys);
    const inFlight = this.#clientChecks.get(keys.client) ?? 0;
    if (inFlight >= CLIENT_CHECKS_MAX) throw this.#refuse('concurrent', 'too many logins at once from this client', 1);
    this.#clientChecks.set(keys.client, inFlight + 1);
    let valid: boolean;
    try {
      valid = await this.#checks.run(check);
    } catch (error) {
      if (error instanceof ApiError && error.code === 'login_throttled') this.#refused?.inc({ reason: 'queue' });
      throw error;
    } finally {
      const left = (this.#clientChecks.get(keys.client) ?? 1) - 1;
      if (left === 0) this.#clientChecks.delete(keys.client);
      else this.#clientChecks.set(keys.client, left);
    }
    if (valid) await this.#consecutive.delete(keys.pair);
    else await this.#recordFailure(keys);
    return valid;
  }

  async #refuseIfThrottled(keys: ThrottleKeys): Promise<void> {
    const [box, client, user] = await Promise.all([
      this.#penaltyBox.get(keys.pair),
      this.#perClient.get(keys.client),
      this.#perUser.get(keys.user),
    ]);
    const waits: Array<{ reason: string; ms: number }> = [];
    if (box && box.consumedPoints > 1) waits.push({ reason: 'backoff', ms: box.msBeforeNext });
    if (client && client.consumedPoints >= this.#config.loginFailuresPerClientPerHour)
      waits.push({ reason: 'client', ms: client.msBeforeNext });
    if (user && user.consumedPoints >= this.#config.loginFailuresPerUserPerHour)
      waits.push({ reason: 'user', ms: user.msBeforeNext });
    if (waits.length === 0) return;
    const longest = waits.reduce((a, b) => (b.ms > a.ms ? b : a));
    throw this.#refuse(
      longest.reason,
      'too many failed logins; retry after the time in Retry-After',
      longest.ms / 1000,
    );
  }

  #refuse(reason: string, detail: string, retryAfterS: number): ApiError {
    this.#refused?.inc({ reason });
    return throttled(detail, retryAfterS);
  }

  async #recordFailure(keys: ThrottleKeys): Promise<void> {
    const [failures] = await Promise.all([
      this.#consecutive.penalty(keys.pair, 1),
      penalize(this.#perClient, keys.client),
      penalize(this.#perUser, keys.user),
    ]);
    const over = failures.consumedPoints - this.#config.loginFailuresFree;
    if (over > 0) await this.#penaltyBox.block(keys.pair, backoffS(over, this.#config.loginBackoffMaxS));
  }
}

/** The backoff after the `over`-th failure beyond the free ones: 1 s, 2 s, 4 s … capped. */
export function backoffS(over: number, maxS: number): number {
  return Math.min(2 ** Math.min(over - 1, 30), maxS);
}

interface ThrottleKeys {
  pair: string;
  client: string;
  user: string;
}

function throttleKeys(username: string, client: string): ThrottleKeys {
  const user = username.toLowerCase();
  const address = clientKey(client);
  return { pair: `${user}\u0000${address}`, client: address, user };
}

/** An IPv6 client is its /64 (one host usually has the whole prefix); IPv4-mapped addresses are IPv4. */
export function clientKey(address: string): string {
  const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  if (isIP(plain) !== 6) return plain;
  const [head] = plain.split('::');
  const groups = head!.split(':').filter((g) => g !== '');
  const expanded = plain.includes('::') ? groups : plain.split(':');
  return `${[...expanded, '0', '0', '0', '0'].slice(0, 4).join(':')}::/64`;
}

async function penalize(limiter: RateLimiterMemory, key: string): Promise<RateLimiterRes> {
  return limiter.penalty(key, 1);
}

function throttled(detail: string, retryAfterS: number): ApiError {
  return new ApiError('login_throttled', detail, { retryAfterS: Math.max(1, Math.ceil(retryAfterS)) });
}

/** At most `max` tasks at once, the rest waiting in a bounded FIFO queue for a bounded time. */
class CheckPool {
  readonly #max: number;
  readonly #queueMax: number;
  readonly #waitMs: number;
  readonly #queue: Array<() => void> = [];
  #running = 0;

  constructor(max: number, queueMax: number, waitMs: number) {
    this.#max = max;
    this.#queueMax = queueMax;
    this.#waitMs = waitMs;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#max) await this.#slot();
    else this.#running++;
    try {
      return await task();
    } finally {
      const next = this.#queue.shift();
      if (next) next();
      else this.#running--;
    }
  }

  /** Waits for a running task to hand over its slot (the count stays the same). */
  #slot(): Promise<void> {
    if (this.#queue.length >= this.#queueMax) return Promise.reject(throttled('too many logins waiting', 1));
    return new Promise((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const index = this.#queue.indexOf(wake);
        if (index >= 0) this.#queue.splice(index, 1);
        reject(throttled('logins are queued too long', 1));
      }, this.#waitMs);
      this.#queue.push(wake);
    });
  }
}
