// Per-principal quotas (issue 15): what one token subject may hold or do, so that one client cannot take
// what all share. Each is configurable (docs/operations.md) and answered 429 problem+json with code
// quota_exceeded, the quota's name and its limit:
//   sse_streams_per_principal  open event streams   (HTTP_SSE_STREAMS_PER_PRINCIPAL_MAX)
//   waiters_per_principal      requests in ?wait     (HTTP_WAITERS_PER_PRINCIPAL_MAX)
//   commands_per_second        commands per second   (HTTP_COMMANDS_PER_PRINCIPAL_PER_S, rate-limiter-flexible)
// The instance-wide caps (HTTP_SSE_CONNECTIONS_MAX, HTTP_WAITERS_MAX) stay as the outer bound. Counts are
// per instance; the held ones are released when the stream or the wait ends.
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Counter } from 'prom-client';
import type { HttpConfig } from '../config/config.ts';
import type { Principal } from './principal.ts';
import { ApiError } from '../problems/errors.ts';
import type { Metrics } from '../metrics/metrics.ts';

export type QuotaName = 'sse_streams_per_principal' | 'waiters_per_principal' | 'commands_per_second';

export class PrincipalQuotas {
  readonly #config: HttpConfig;
  readonly #held = new Map<QuotaName, Map<string, number>>();
  readonly #commands: RateLimiterMemory;
  readonly #exceeded: Counter<'quota'>;

  constructor(config: HttpConfig, metrics: Metrics) {
    this.#config = config;
    this.#commands = new RateLimiterMemory({
      keyPrefix: 'commands',
      points: config.commandsPerPrincipalPerS,
      duration: 1,
    });
    this.#exceeded = metrics.counter({
      name: 'bankstream_http_quota_exceeded_total',
      help: 'Requests refused because a principal exceeded a quota',
      labelNames: ['quota'],
    });
  }

  /** Takes one of the principal's event streams; returns the release function (idempotent). */
  acquireStream(principal: Principal): () => void {
    return this.#acquire('sse_streams_per_principal', principal, this.#config.sseStreamsPerPrincipalMax);
  }

  /** Takes one of the principal's ?wait slots; returns the release function (idempotent). */
  acquireWaiter(principal: Principal): () => void {
    return this.#acquire('waiters_per_principal', principal, this.#config.waitersPerPrincipalMax);
  }

  /** Counts one command against the principal's rate; throws 429 with Retry-After beyond it. */
  async consumeCommand(principal: Principal): Promise<void> {
    try {
      await this.#commands.consume(keyOf(principal), 1);
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error;
      throw this.#refuse('commands_per_second', this.#config.commandsPerPrincipalPerS, error.msBeforeNext / 1000);
    }
  }

  /** What a principal holds now (tests, metrics). */
  held(quota: QuotaName, principal: Principal): number {
    return this.#held.get(quota)?.get(keyOf(principal)) ?? 0;
  }

  #acquire(quota: QuotaName, principal: Principal, limit: number): () => void {
    let counts = this.#held.get(quota);
    if (!counts) this.#held.set(quota, (counts = new Map()));
    const key = keyOf(principal);
    const held = counts.get(key) ?? 0;
    if (held >= limit) throw this.#refuse(quota, limit, quota === 'sse_streams_per_principal' ? 5 : 1);
    counts.set(key, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (counts.get(key) ?? 1) - 1;
      if (left <= 0) counts.delete(key);
      else counts.set(key, left);
    };
  }

  #refuse(quota: QuotaName, limit: number, retryAfterS: number): ApiError {
    this.#exceeded.inc({ quota });
    return new ApiError('quota_exceeded', `quota ${quota} (${limit}) is used up for this principal`, {
      retryAfterS: Math.max(1, Math.ceil(retryAfterS)),
      extensions: { quota, limit },
    });
  }
}

/** A principal is its token subject (user ids are unique across roles). */
function keyOf(principal: Principal): string {
  return principal.subject;
}
