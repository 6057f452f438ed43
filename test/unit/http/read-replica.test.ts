import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseReadSource, replicaLagOf } from '../../../src/http/read-replica.ts';

describe('read replica lag rule', () => {
  it('should read the replica when its lag is at most the bound', () => {
    expect(chooseReadSource({ standby: true, lagMs: 0 }, 5000, 'primary')).toEqual({ source: 'replica', lagMs: 0 });
    expect(chooseReadSource({ standby: true, lagMs: 5000 }, 5000, 'unavailable')).toEqual({
      source: 'replica',
      lagMs: 5000,
    });
  });

  it('should fall back to the primary when the replica is further behind and the policy is primary', () => {
    const decision = chooseReadSource({ standby: true, lagMs: 5001 }, 5000, 'primary');
    expect(decision.source).toBe('primary');
    expect(decision).toMatchObject({ lagMs: 5001, reason: expect.stringContaining('5001 ms behind') });
  });

  it('should answer unavailable when the replica is further behind and the policy is unavailable', () => {
    expect(chooseReadSource({ standby: true, lagMs: 60_000 }, 5000, 'unavailable').source).toBe('unavailable');
  });

  it('should treat an unknown lag or an unreachable replica as too far behind', () => {
    expect(chooseReadSource({ standby: true, lagMs: null }, 5000, 'primary')).toMatchObject({
      source: 'primary',
      lagMs: null,
    });
    expect(chooseReadSource('unreachable', 5000, 'unavailable')).toMatchObject({
      source: 'unavailable',
      reason: 'the read replica is unreachable',
    });
  });

  it('should read a promoted replica (no longer in recovery) as current', () => {
    expect(chooseReadSource({ standby: false, lagMs: null }, 0, 'unavailable')).toEqual({
      source: 'replica',
      lagMs: 0,
    });
  });

  it('should never read a standby beyond the bound for any lag, bound and policy', () => {
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: 0, max: 10_000_000 })),
        fc.integer({ min: 0, max: 3_600_000 }),
        fc.constantFrom('primary' as const, 'unavailable' as const),
        (lagMs, bound, policy) => {
          const decision = chooseReadSource({ standby: true, lagMs }, bound, policy);
          const fresh = lagMs !== null && lagMs <= bound;
          expect(decision.source).toBe(fresh ? 'replica' : policy);
        },
      ),
    );
  });

  it('should parse the lag row the replica returns, clamping a negative clock skew to zero', () => {
    expect(replicaLagOf({ standby: true, lag_ms: '1234' })).toEqual({ standby: true, lagMs: 1234 });
    expect(replicaLagOf({ standby: true, lag_ms: '-20' })).toEqual({ standby: true, lagMs: 0 });
    expect(replicaLagOf({ standby: true, lag_ms: null })).toEqual({ standby: true, lagMs: null });
    expect(replicaLagOf(undefined)).toEqual({ standby: true, lagMs: null });
  });
});
