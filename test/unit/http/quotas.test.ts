import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { Metrics } from '../../../src/metrics/metrics.ts';
import { PrincipalQuotas } from '../../../src/http/quotas.ts';

const principal = (subject: string) => ({ subject, role: 'customer' as const, expiresAtMs: Date.now() + 60_000 });
const quotas = (env: Record<string, string>) =>
  new PrincipalQuotas(loadConfig(env).http, new Metrics({ app: 'a', instance: 'i' }, { processMetrics: false }));

describe('PrincipalQuotas', () => {
  it('should refuse the next stream with the quota named when a principal holds its limit, and free it on release', () => {
    const q = quotas({ HTTP_SSE_STREAMS_PER_PRINCIPAL_MAX: '2' });
    const alice = principal('alice');
    const first = q.acquireStream(alice);
    q.acquireStream(alice);

    expect(() => q.acquireStream(alice)).toThrow(
      expect.objectContaining({
        code: 'quota_exceeded',
        status: 429,
        extensions: { quota: 'sse_streams_per_principal', limit: 2 },
      }),
    );
    expect(() => q.acquireStream(principal('bob'))).not.toThrow();
    first();
    first();
    expect(q.held('sse_streams_per_principal', alice)).toBe(1);
    expect(() => q.acquireStream(alice)).not.toThrow();
  });

  it('should refuse the next waiter when a principal holds its limit', () => {
    const q = quotas({ HTTP_WAITERS_PER_PRINCIPAL_MAX: '1' });
    q.acquireWaiter(principal('alice'));

    expect(() => q.acquireWaiter(principal('alice'))).toThrow(
      expect.objectContaining({ extensions: { quota: 'waiters_per_principal', limit: 1 } }),
    );
  });

  it('should refuse commands beyond the rate with a Retry-After when one principal sends too many in a second', async () => {
    const q = quotas({ HTTP_COMMANDS_PER_PRINCIPAL_PER_S: '3' });
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => q.consumeCommand(principal('alice'))));

    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ code: 'quota_exceeded', extensions: { quota: 'commands_per_second' } });
    expect(refused.reason.retryAfterS).toBeGreaterThanOrEqual(1);
    await expect(q.consumeCommand(principal('bob'))).resolves.toBeUndefined();
  });
});
