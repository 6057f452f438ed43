import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clusterKeysFromSecret, signParts, verifyParts } from '../../../src/config/cluster-key.ts';
import { ConfigError, loadConfig, requireClusterKeys } from '../../../src/config/config.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

describe('cluster keys', () => {
  it('should be undefined when CLUSTER_SECRET is unset, and required by name where needed', () => {
    const config = loadConfig({});
    expect(config.clusterKeys).toBeUndefined();
    expect(() => requireClusterKeys(config.clusterKeys, 'the processor')).toThrow(
      /CLUSTER_SECRET: is required by the processor/,
    );
  });

  it('should refuse a short secret, a previous key without a current one, and equal ids', () => {
    expect(() => loadConfig({ CLUSTER_SECRET: 'short' })).toThrow(ConfigError);
    expect(() => loadConfig({ CLUSTER_SECRET_PREVIOUS: A, CLUSTER_SECRET_PREVIOUS_ID: 'k0' })).toThrow(
      /CLUSTER_SECRET_PREVIOUS/,
    );
    expect(() => loadConfig({ CLUSTER_SECRET: A, CLUSTER_SECRET_PREVIOUS: B })).toThrow(/CLUSTER_SECRET_PREVIOUS_ID/);
    expect(() =>
      loadConfig({ CLUSTER_SECRET: A, CLUSTER_SECRET_PREVIOUS: B, CLUSTER_SECRET_PREVIOUS_ID: 'k1' }),
    ).toThrow(/must differ/);
    expect(() => loadConfig({ CLUSTER_SECRET: A, CLUSTER_SECRET_ID: 'bad id' })).toThrow(/CLUSTER_SECRET_ID/);
  });

  it('should never print the secret', () => {
    const keys = loadConfig({ CLUSTER_SECRET: A }).clusterKeys!;
    expect(JSON.stringify(keys)).not.toContain(A);
    expect(String(keys.current.secret)).toBe('[redacted]');
  });

  it('should verify what it signed, and nothing else, for every purpose and split of the parts', () => {
    const keys = loadConfig({ CLUSTER_SECRET: A }).clusterKeys!;
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.string(), { nil: null }), { maxLength: 4 }),
        fc.string({ minLength: 1 }),
        (parts, extra) => {
          const { keyId, mac } = signParts(keys, 'leg', parts);
          expect(verifyParts(keys, 'leg', parts, keyId, mac).ok).toBe(true);
          expect(verifyParts(keys, 'changelog', parts, keyId, mac).ok).toBe(false);
          expect(verifyParts(keys, 'leg', [...parts, extra], keyId, mac).ok).toBe(false);
          // Moving bytes from one part to the next changes the MAC (parts are length-prefixed).
          if (parts.length >= 1 && typeof parts[0] === 'string') {
            expect(verifyParts(keys, 'leg', [parts[0] + extra, ...parts.slice(1)], keyId, mac).ok).toBe(false);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('should accept the previous key during a rotation and refuse it after', () => {
    const old = loadConfig({ CLUSTER_SECRET: A, CLUSTER_SECRET_ID: 'k1' }).clusterKeys!;
    const rotating = loadConfig({
      CLUSTER_SECRET: B,
      CLUSTER_SECRET_ID: 'k2',
      CLUSTER_SECRET_PREVIOUS: A,
      CLUSTER_SECRET_PREVIOUS_ID: 'k1',
    }).clusterKeys!;
    const rotated = loadConfig({ CLUSTER_SECRET: B, CLUSTER_SECRET_ID: 'k2' }).clusterKeys!;
    const signed = signParts(old, 'directory', ['x']);
    expect(verifyParts(rotating, 'directory', ['x'], signed.keyId, signed.mac)).toEqual({
      ok: true,
      keyId: 'k1',
      previous: true,
    });
    expect(verifyParts(rotated, 'directory', ['x'], signed.keyId, signed.mac)).toEqual({
      ok: false,
      reason: 'unknown_key',
    });
    expect(signParts(rotating, 'directory', ['x']).keyId).toBe('k2');
    // A MAC claiming the current key id but made with another secret is refused.
    expect(verifyParts(rotated, 'directory', ['x'], 'k2', signed.mac)).toEqual({ ok: false, reason: 'bad_mac' });
    expect(verifyParts(rotated, 'directory', ['x'], undefined, undefined)).toEqual({
      ok: false,
      reason: 'missing_mac',
    });
  });

  it('should make exactly the HMAC-SHA256 of the length-prefixed parts for any secret and parts', () => {
    // The MAC is computed from pads made once per key (cluster-key.ts computeMac); this is the reference.
    const reference = (secret: string, parts: Array<Buffer | string | null>): Buffer => {
      const hmac = createHmac('sha256', Buffer.from(secret, 'utf8')).update('bankstream/leg/v1');
      for (const part of parts) {
        const bytes = part === null ? Buffer.alloc(0) : typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
        const prefix = Buffer.alloc(5);
        prefix[0] = part === null ? 0 : 1;
        prefix.writeUInt32BE(bytes.length, 1);
        hmac.update(prefix).update(bytes);
      }
      return hmac.digest();
    };
    const part = fc.oneof(
      fc.constant(null),
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    );
    // Secrets shorter and longer than SHA-256's 64-byte block (a longer key is hashed first).
    fc.assert(
      fc.property(fc.string({ minLength: 32, maxLength: 200 }), fc.array(part, { maxLength: 6 }), (secret, parts) => {
        expect(signParts(clusterKeysFromSecret(secret), 'leg', parts).mac).toEqual(reference(secret, parts));
      }),
      { numRuns: 300 },
    );
  });
});
