import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BreakerState, CircuitBreaker, CircuitOpenError } from '../../../src/http/circuit-breaker.ts';

function clock(): { nowMs: () => number; advance: (ms: number) => void } {
  let now = 1_000_000;
  return {
    nowMs: () => now,
    advance: (ms) => {
      now += ms;
    },
  };
}

const fail = () => Promise.reject(new Error('connection refused'));
const ok = () => Promise.resolve('row');

describe('CircuitBreaker', () => {
  it('should stay closed when failures are fewer than failuresMax or broken by a success', async () => {
    const breaker = new CircuitBreaker({ failuresMax: 3, openMs: 1000, nowMs: clock().nowMs });
    await expect(breaker.run(fail)).rejects.toThrow('connection refused');
    await expect(breaker.run(fail)).rejects.toThrow('connection refused');
    await expect(breaker.run(ok)).resolves.toBe('row');
    await expect(breaker.run(fail)).rejects.toThrow('connection refused');
    await expect(breaker.run(fail)).rejects.toThrow('connection refused');
    expect(breaker.state).toBe('closed');
  });

  it('should open after failuresMax consecutive failures and refuse at once with the time left', async () => {
    const time = clock();
    const breaker = new CircuitBreaker({ failuresMax: 2, openMs: 5000, nowMs: time.nowMs });
    await breaker.run(fail).catch(() => undefined);
    await breaker.run(fail).catch(() => undefined);
    expect(breaker.state).toBe('open');
    let called = false;
    time.advance(1500);
    const refused = await breaker
      .run(async () => {
        called = true;
        return 1;
      })
      .catch((error: unknown) => error);
    expect(called).toBe(false);
    expect(refused).toBeInstanceOf(CircuitOpenError);
    expect((refused as CircuitOpenError).retryAfterMs).toBe(3500);
    expect(breaker.rejected).toBe(1);
  });

  it('should let exactly one probe through when half-open and close when it succeeds', async () => {
    const time = clock();
    const breaker = new CircuitBreaker({ failuresMax: 1, openMs: 1000, nowMs: time.nowMs });
    await breaker.run(fail).catch(() => undefined);
    time.advance(1000);
    expect(breaker.state).toBe('half-open');
    let release: (value: string) => void = () => undefined;
    const probe = breaker.run(
      () =>
        new Promise<string>((resolve) => {
          release = resolve;
        }),
    );
    // While the probe runs, every other call still fails fast.
    await expect(breaker.run(ok)).rejects.toBeInstanceOf(CircuitOpenError);
    release('probe row');
    await expect(probe).resolves.toBe('probe row');
    expect(breaker.state).toBe('closed');
    await expect(breaker.run(ok)).resolves.toBe('row');
  });

  it('should open again for another openMs when the half-open probe fails', async () => {
    const time = clock();
    const changes: Array<[BreakerState, BreakerState]> = [];
    const breaker = new CircuitBreaker({
      failuresMax: 1,
      openMs: 1000,
      nowMs: time.nowMs,
      onStateChange: (from, to) => changes.push([from, to]),
    });
    await breaker.run(fail).catch(() => undefined);
    time.advance(1200);
    await expect(breaker.run(fail)).rejects.toThrow('connection refused');
    expect(breaker.state).toBe('open');
    const refused = (await breaker.run(ok).catch((error: unknown) => error)) as CircuitOpenError;
    expect(refused.retryAfterMs).toBe(1000);
    expect(changes).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'open'],
    ]);
  });

  it('should not count errors that isFailure rejects, such as a refused query', async () => {
    const breaker = new CircuitBreaker({ failuresMax: 1, openMs: 1000, nowMs: clock().nowMs });
    await expect(
      breaker.run(
        () => Promise.reject(new Error('bad input')),
        () => false,
      ),
    ).rejects.toThrow('bad input');
    expect(breaker.state).toBe('closed');
  });

  it('should refuse a zero bound when constructed', () => {
    expect(() => new CircuitBreaker({ failuresMax: 0, openMs: 1000 })).toThrow(RangeError);
    expect(() => new CircuitBreaker({ failuresMax: 1, openMs: 0 })).toThrow(RangeError);
  });

  it('should match a reference model for any sequence of calls and clock steps', async () => {
    const step = fc.oneof(
      fc.constant({ kind: 'ok' as const }),
      fc.constant({ kind: 'fail' as const }),
      fc.integer({ min: 0, max: 3000 }).map((ms) => ({ kind: 'wait' as const, ms })),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.array(step, { maxLength: 60 }),
        async (failuresMax, steps) => {
          const time = clock();
          const breaker = new CircuitBreaker({ failuresMax, openMs: 1000, nowMs: time.nowMs });
          let model: { state: BreakerState; failures: number; until: number } = {
            state: 'closed',
            failures: 0,
            until: 0,
          };
          for (const s of steps) {
            if (s.kind === 'wait') {
              time.advance(s.ms);
              continue;
            }
            if (model.state === 'open' && time.nowMs() >= model.until) model = { ...model, state: 'half-open' };
            const refused = model.state === 'open';
            const outcome = await breaker.run(s.kind === 'ok' ? ok : fail).then(
              () => 'ok',
              (error: unknown) => (error instanceof CircuitOpenError ? 'refused' : 'failed'),
            );
            if (refused) {
              expect(outcome).toBe('refused');
            } else if (s.kind === 'ok') {
              expect(outcome).toBe('ok');
              model = { state: 'closed', failures: 0, until: 0 };
            } else {
              expect(outcome).toBe('failed');
              const failures = model.failures + 1;
              model =
                model.state === 'half-open' || failures >= failuresMax
                  ? { state: 'open', failures, until: time.nowMs() + 1000 }
                  : { ...model, failures };
            }
            expect(breaker.state).toBe(
              model.state === 'open' && time.nowMs() >= model.until ? 'half-open' : model.state,
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
