import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkedView, remoteProblem } from '../../../src/http/proxy-answer.ts';

const owner = { instanceId: 'b', url: 'http://127.0.0.1:9001' };
const expected = { accountId: 'acc-1', partition: 2, owner, allowStale: false };
const view = {
  accountId: 'acc-1',
  ownerId: 'alice',
  currency: 'EUR',
  status: 'open',
  balance: '10.00',
  inFlight: '0.00',
  posted: '10.00',
  pendingDebits: '4.00',
  pendingCredits: '1.00',
  available: '6.00',
  overdraftLimit: '0.00',
  openedAt: '2025-01-01T00:00:00.000Z',
  position: { partition: 2, accounts: '4', balances: null },
  servedBy: { instanceId: 'b', url: 'http://elsewhere' },
};
const body = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8');

describe('checkedView', () => {
  it('should rebuild the view with our own servedBy when the owner answers the expected shape', () => {
    expect(checkedView(body({ ...view, injected: '<script>' }), expected)).toEqual({ ...view, servedBy: owner });
  });

  it('should fill the hold fields as "no holds" when an owner of a version before holds leaves them out', () => {
    const { posted: _p, pendingDebits: _d, pendingCredits: _c, available: _a, ...legacy } = view;
    expect(checkedView(body({ ...legacy, overdraftLimit: '5.00' }), expected)).toEqual({
      ...legacy,
      overdraftLimit: '5.00',
      posted: '10.00',
      pendingDebits: '0.00',
      pendingCredits: '0.00',
      available: '15.00',
      servedBy: owner,
    });
  });

  it('should refuse an answer when it names another account, partition or instance, or a field has the wrong type', () => {
    for (const bad of [
      { ...view, accountId: 'acc-2' },
      { ...view, position: { ...view.position, partition: 3 } },
      { ...view, servedBy: { instanceId: 'evil' } },
      { ...view, balance: 10 },
      { ...view, balance: '1e9' },
      { ...view, available: 6 },
      { ...view, pendingDebits: 'four' },
      { ...view, status: 'frozen' },
      { ...view, stale: { standby: true, lagRecords: '3' } },
      [view],
      'hello',
    ]) {
      expect(checkedView(body(bad), expected)).toBeUndefined();
    }
    expect(checkedView(Buffer.from('<html>'), expected)).toBeUndefined();
  });
});

describe('answers of a hostile owner (property)', () => {
  it('should neither throw nor pass on anything but an account view when the body is any JSON or bytes', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue().map((v) => body(v)),
          fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
        ),
        fc.integer({ min: 100, max: 599 }),
        (bytes, status) => {
          const parsed = checkedView(bytes, expected);
          if (parsed !== undefined) expect(parsed.accountId).toBe('acc-1');
          const problem = remoteProblem(owner, status, new Headers(), bytes);
          expect([403, 404, 429, 502, 503]).toContain(problem.status);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('should answer the code of the status when the owner names none (a JSON false, an empty object)', () => {
    expect(remoteProblem(owner, 503, new Headers(), body(false))).toMatchObject({ status: 502 });
    expect(remoteProblem(owner, 503, new Headers(), body({}))).toMatchObject({
      status: 503,
      code: 'partition_unavailable',
    });
    expect(remoteProblem(owner, 429, new Headers(), body({ code: 'quota_exceeded' }))).toMatchObject({
      status: 429,
      code: 'quota_exceeded',
    });
  });
});

describe('remoteProblem', () => {
  const headers = (h: Record<string, string> = {}) => new Headers(h);

  it('should keep a known code of the same status and a numeric Retry-After', () => {
    const error = remoteProblem(
      owner,
      503,
      headers({ 'retry-after': '2' }),
      body({ code: 'partition_unavailable', detail: 'restoring' }),
    );

    expect(error).toMatchObject({ code: 'partition_unavailable', status: 503, message: 'restoring', retryAfterS: 2 });
  });

  it('should answer 502 when the owner refuses our credential, answers an unexpected status or no problem document', () => {
    expect(remoteProblem(owner, 401, headers(), body({ code: 'invalid_token' }))).toMatchObject({
      status: 502,
      code: 'bad_gateway',
    });
    expect(remoteProblem(owner, 302, headers({ location: 'http://evil' }), Buffer.alloc(0))).toMatchObject({
      status: 502,
    });
    expect(remoteProblem(owner, 403, headers(), Buffer.from('<html>'))).toMatchObject({ status: 502 });
  });

  it('should not take over a code of another status, nor control characters or a huge detail', () => {
    const error = remoteProblem(
      owner,
      403,
      headers({ 'retry-after': 'soon' }),
      body({ code: 'internal', detail: `x\r\nSet-Cookie: a=b${'y'.repeat(2000)}` }),
    );

    expect(error).toMatchObject({ code: 'forbidden', status: 403, retryAfterS: undefined });
    expect(error.message).not.toMatch(/[\r\n]/);
    expect(error.message.length).toBeLessThanOrEqual(500);
  });
});
