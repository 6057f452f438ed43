// A circuit breaker for the API's database calls. While PostgreSQL is down or moving (a failover), every
// read would otherwise wait for its connection timeout (3 s) and hold a pool slot; after
// `failuresMax` consecutive failures the breaker OPENS and calls fail at once (the API answers 503
// with Retry-After = the time left open). After `openMs` it is HALF-OPEN: exactly one call goes
// through as a probe while the others still fail fast; the probe's success CLOSES it, its failure
// opens it again for another `openMs`.
//
// Written here rather than taken from opossum: opossum counts a rolling percentage per wrapped
// function and adds its own call timeouts; the API needs one breaker shared by every query of the read
// model, consecutive-failure counting, the remaining open time for Retry-After, only database failures
// counted (a query refused for bad input is not an outage), and an injectable clock for its tests.
// That is these sixty lines.

export type BreakerState = 'closed' | 'open' | 'half-open';

/** Gauge values on /metrics (bankstream_db_circuit_state). */
export const BREAKER_STATE_VALUES: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker. */
  failuresMax: number;
  /** How long it stays open before one probe. */
  openMs: number;
  nowMs?: () => number;
  onStateChange?: (from: BreakerState, to: BreakerState) => void;
}

export class CircuitOpenError extends Error {
  readonly code = 'circuit_open';
  /** When a call may be tried again. */
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number) {
    super(`the database circuit breaker is open (${retryAfterMs} ms left): recent database calls failed`);
    this.name = 'CircuitOpenError';
    this.retryAfterMs = retryAfterMs;
  }
}

export class CircuitBreaker {
  readonly #options: Required<Omit<CircuitBreakerOptions, 'onStateChange'>> &
    Pick<CircuitBreakerOptions, 'onStateChange'>;
  #state: BreakerState = 'closed';
  #failures = 0;
  #openUntilMs = 0;
  #probing = false;
  /** Calls refused while open or while the half-open probe ran. */
  rejected = 0;

  constructor(options: CircuitBreakerOptions) {
    if (!(options.failuresMax >= 1) || !(options.openMs >= 1))
      throw new RangeError('failuresMax and openMs must be at least 1');
    this.#options = { ...options, nowMs: options.nowMs ?? Date.now };
  }

  get state(): BreakerState {
    if (this.#state === 'open' && this.#options.nowMs() >= this.#openUntilMs) this.#move('half-open');
    return this.#state;
  }

  /** Runs the call unless the breaker is open; `isFailure` says which errors count (default: all). */
  async run<T>(call: () => Promise<T>, isFailure: (error: unknown) => boolean = () => true): Promise<T> {
    const state = this.state;
    if (state === 'open' || (state === 'half-open' && this.#probing)) {
      this.rejected += 1;
      throw new CircuitOpenError(Math.max(1, this.#openUntilMs - this.#options.nowMs()));
    }
    const probe = state === 'half-open';
    if (probe) this.#probing = true;
    try {
      const result = await call();
      this.#succeeded();
      return result;
    } catch (error) {
      if (isFailure(error)) this.#failed();
      else this.#succeeded();
      throw error;
    } finally {
      if (probe) this.#probing = false;
    }
  }

  #succeeded(): void {
    this.#failures = 0;
    if (this.#state !== 'closed') this.#move('closed');
  }

  #failed(): void {
    this.#failures += 1;
    if (this.#state === 'half-open' || this.#failures >= this.#options.failuresMax) {
      this.#openUntilMs = this.#options.nowMs() + this.#options.openMs;
      if (this.#state !== 'open') this.#move('open');
    }
  }

  #move(to: BreakerState): void {
    const from = this.#state;
    this.#state = to;
    this.#options.onStateChange?.(from, to);
  }
}
