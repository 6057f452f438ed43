import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clusterKeysFromSecret } from '../../../src/config/cluster-key.ts';
import { INSTANCE_CALL_TTL_S, signInstanceCall, verifyInstanceCall } from '../../../src/http/instance-call.ts';

const keys = clusterKeysFromSecret('unit-test-cluster-secret-of-at-least-32-chars');
const otherKeys = clusterKeysFromSecret('another-cluster-secret-of-at-least-32-chars!!');
const now = 1_800_000_000_000;
const alice = { subject: 'alice', role: 'customer' as const, expiresAtMs: now + 3600_000 };
const call = { caller: 'a', target: 'b', method: 'GET', path: '/v1/accounts/acc-1' };
const expected = { self: 'b', method: 'GET', path: '/v1/accounts/acc-1', clockToleranceS: 5 };

describe('instance credentials', () => {
  it('should carry the verified principal when the target, request and time match', () => {
    const check = verifyInstanceCall(keys, signInstanceCall(keys, alice, call, now), expected, now + 1000);

    expect(check).toEqual({
      ok: true,
      caller: 'a',
      principal: { subject: 'alice', role: 'customer', expiresAtMs: now + INSTANCE_CALL_TTL_S * 1000 },
    });
  });

  it('should refuse a credential when it is for another instance, another request or signed with another key', () => {
    const credential = signInstanceCall(keys, alice, call, now);

    expect(verifyInstanceCall(keys, credential, { ...expected, self: 'c' }, now)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('another instance'),
    });
    expect(verifyInstanceCall(keys, credential, { ...expected, path: '/v1/accounts/acc-2' }, now)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('another request'),
    });
    expect(verifyInstanceCall(keys, credential, { ...expected, method: 'POST' }, now)).toMatchObject({ ok: false });
    expect(verifyInstanceCall(otherKeys, credential, expected, now)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('does not verify'),
    });
  });

  it('should refuse a credential when it has expired or is not valid yet', () => {
    const credential = signInstanceCall(keys, alice, call, now);

    expect(verifyInstanceCall(keys, credential, expected, now + (INSTANCE_CALL_TTL_S + 6) * 1000)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('expired'),
    });
    expect(verifyInstanceCall(keys, credential, expected, now - 60_000)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('not valid yet'),
    });
  });

  it('should refuse a credential when its payload was changed (another subject or role)', () => {
    const [v, keyId, payload, mac] = signInstanceCall(keys, alice, call, now).split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: 'bob', role: 'admin' }), 'utf8').toString('base64url');

    expect(verifyInstanceCall(keys, [v, keyId, forged, mac].join('.'), expected, now)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('does not verify'),
    });
    expect(verifyInstanceCall(keys, 'Bearer abc', expected, now)).toMatchObject({ ok: false });
    expect(verifyInstanceCall(keys, 'v1.k1.e30.', expected, now)).toMatchObject({ ok: false });
  });

  it('should never accept a credential when it is random text or a changed real one (property)', () => {
    const real = signInstanceCall(keys, alice, call, now);
    fc.assert(
      fc.property(
        fc.string({ maxLength: 300 }),
        fc.nat({ max: real.length - 1 }),
        fc.string({ minLength: 1, maxLength: 1 }),
        (text, at, c) => {
          expect(verifyInstanceCall(keys, text, expected, now).ok).toBe(false);
          const changed = real.slice(0, at) + c + real.slice(at + 1);
          if (changed !== real) expect(verifyInstanceCall(keys, changed, expected, now).ok).toBe(false);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('should refuse a credential when its MAC is spelled in a non-canonical base64url', () => {
    const credential = signInstanceCall(keys, alice, call, now);
    const last = credential.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    // A 32-byte MAC (43 characters) leaves the 2 lowest bits of its last character unused: flipping one decodes to the same bytes.
    const sibling = alphabet[alphabet.indexOf(last) ^ 1]!;

    expect(Buffer.from(credential.split('.')[3]!.slice(0, -1) + sibling, 'base64url')).toEqual(
      Buffer.from(credential.split('.')[3]!, 'base64url'),
    );
    expect(verifyInstanceCall(keys, credential.slice(0, -1) + sibling, expected, now)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('canonical'),
    });
  });

  it('should never outlive the user token when the token expires within the credential lifetime', () => {
    const shortLived = { ...alice, expiresAtMs: now + 10_000 };
    const check = verifyInstanceCall(keys, signInstanceCall(keys, shortLived, call, now), expected, now);

    expect(check.ok && check.principal.expiresAtMs).toBe(now + 10_000);
    expect(
      verifyInstanceCall(keys, signInstanceCall(keys, shortLived, call, now), expected, now + 16_000),
    ).toMatchObject({ ok: false });
  });
});
