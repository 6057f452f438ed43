// The cluster secret: one key shared by every instance of an application, which authenticates what
// instances tell each other through Kafka and HTTP (internal legs, changelog records, the instance
// directory, instance-to-instance calls). Nothing that only reads a topic or writes upstream commands
// holds it, so a producer credential, an open broker or a missing ACL is not enough to forge them.
//
// Rotation: start every instance with the new key as CLUSTER_SECRET (new CLUSTER_SECRET_ID) and the old
// one as CLUSTER_SECRET_PREVIOUS (its id as CLUSTER_SECRET_PREVIOUS_ID); once every instance signs with
// the new key and the records signed with the old one are consumed (or past retention), drop the
// previous key. A MAC names the key id that made it, so verification never guesses.
// The settings are parsed in cluster-secret.ts (clusterKeysConfig); this file holds the keys' use.
import { hash, timingSafeEqual } from 'node:crypto';
import { Secret } from './secret.ts';

export interface ClusterKey {
  /** Short public name of the key, carried next to every MAC it makes. */
  id: string;
  secret: Secret;
}

export interface ClusterKeys {
  /** Signs everything; verifies MACs carrying its id. */
  current: ClusterKey;
  /** During a rotation only: still accepted for verification, never used to sign. */
  previous: ClusterKey | undefined;
}

/**
 * What a MAC is for. Each purpose is a separate domain: a MAC made for one is never valid for another,
 * so a signed directory record cannot be replayed as a leg, nor a leg as a changelog record.
 */
export type MacPurpose = 'leg' | 'changelog' | 'directory' | 'instance-call';

export interface Mac {
  keyId: string;
  /** HMAC-SHA256, 32 bytes. */
  mac: Buffer;
}

/** HMAC-SHA256 under the current key over the purpose and the parts, each length-prefixed (no ambiguity between parts). */
export function signParts(
  keys: ClusterKeys,
  purpose: MacPurpose,
  parts: readonly (Buffer | string | null | undefined)[],
): Mac {
  const mac = Buffer.allocUnsafe(MAC_BYTES);
  writeMac(keys.current.secret, purpose, parts, mac, 0);
  return { keyId: keys.current.id, mac };
}

/** signParts for the engine's hot path: the MAC is written into `target` at `at` (no buffer of its own); returns the key id. */
export function signPartsInto(
  keys: ClusterKeys,
  purpose: MacPurpose,
  parts: readonly (Buffer | string | null | undefined)[],
  target: Buffer,
  at: number,
): string {
  writeMac(keys.current.secret, purpose, parts, target, at);
  return keys.current.id;
}

/** Bytes of an HMAC-SHA256. */
export const MAC_BYTES = 32;

export type MacCheck =
  | { ok: true; keyId: string; previous: boolean }
  | { ok: false; reason: 'unknown_key' | 'bad_mac' | 'missing_mac' };

/** Verifies a MAC made by signParts with the key it names (current or, during a rotation, previous). Constant time in the MAC. */
export function verifyParts(
  keys: ClusterKeys,
  purpose: MacPurpose,
  parts: readonly (Buffer | string | null | undefined)[],
  keyId: string | undefined,
  mac: Buffer | undefined,
): MacCheck {
  if (keyId === undefined || mac === undefined) return { ok: false, reason: 'missing_mac' };
  const key = keyId === keys.current.id ? keys.current : keyId === keys.previous?.id ? keys.previous : undefined;
  if (!key) return { ok: false, reason: 'unknown_key' };
  if (mac.length !== MAC_BYTES) return { ok: false, reason: 'bad_mac' };
  writeMac(key.secret, purpose, parts, EXPECTED, 0);
  if (!timingSafeEqual(mac, EXPECTED)) return { ok: false, reason: 'bad_mac' };
  return { ok: true, keyId, previous: key !== keys.current };
}

function writeMac(
  secret: Secret,
  purpose: MacPurpose,
  parts: readonly (Buffer | string | null | undefined)[],
  target: Buffer,
  targetAt: number,
): void {
  // HMAC-SHA256 (RFC 2104) as two one-shot SHA-256 calls over pads computed once per key:
  // H((K ^ opad) || H((K ^ ipad) || message)). On the engine's hot path (a MAC per leg and per changelog
  // record) what costs is not the hashing but the objects around it: createHmac's object and native
  // handle, and a new ArrayBuffer for every digest returned as a Buffer (about 1.3 µs each here). So the
  // messages are assembled in reused buffers and the digests come back as binary strings, written straight
  // where they go. All of it is synchronous: nothing else runs between filling and hashing a buffer.
  // The bytes are exactly HMAC-SHA256's (test/unit/config/cluster-key.test.ts compares them with createHmac).
  const pads = padsOf(secret);
  const domain = DOMAINS[purpose];
  let size = BLOCK_BYTES + domain.length;
  for (const part of parts)
    size +=
      5 +
      (part === null || part === undefined
        ? 0
        : typeof part === 'string'
          ? Buffer.byteLength(part, 'utf8')
          : part.length);
  const inner = innerBuffer(size);
  pads.inner.copy(inner, 0);
  let at = BLOCK_BYTES + domain.copy(inner, BLOCK_BYTES);
  for (const part of parts) {
    // Tag 0 = absent (null key), 1 = present; then a 4-byte length: "ab"+"c" never equals "a"+"bc".
    if (part === null || part === undefined) {
      inner[at] = 0;
      inner.writeUInt32BE(0, at + 1);
      at += 5;
    } else if (typeof part === 'string') {
      const written = inner.write(part, at + 5, 'utf8');
      inner[at] = 1;
      inner.writeUInt32BE(written, at + 1);
      at += 5 + written;
    } else {
      inner[at] = 1;
      inner.writeUInt32BE(part.length, at + 1);
      at += 5 + part.copy(inner, at + 5);
    }
  }
  // The outer message: the key's opad block (already in place), then the inner digest.
  pads.outerMessage.write(hash('sha256', inner.subarray(0, size), 'binary'), BLOCK_BYTES, 'binary');
  target.write(hash('sha256', pads.outerMessage, 'binary'), targetAt, 'binary');
}

/** The reused inner-message buffer; a message beyond INNER_REUSED_BYTES_MAX gets a buffer of its own. */
const INNER_REUSED_BYTES_MAX = 64 * 1024;
let innerReused = Buffer.allocUnsafeSlow(4096);

function innerBuffer(size: number): Buffer {
  if (size <= innerReused.length) return innerReused;
  if (size > INNER_REUSED_BYTES_MAX) return Buffer.allocUnsafe(size);
  innerReused = Buffer.allocUnsafeSlow(Math.min(INNER_REUSED_BYTES_MAX, Math.max(size, innerReused.length * 2)));
  return innerReused;
}

/** Where verifyParts writes the expected MAC before comparing (reused: verification is synchronous). */
const EXPECTED = Buffer.allocUnsafeSlow(MAC_BYTES);

/** SHA-256's block and digest sizes (RFC 2104's B and L). */
const BLOCK_BYTES = 64;
const DIGEST_BYTES = 32;

interface Pads {
  /** K ^ ipad, one block. */
  inner: Buffer;
  /** K ^ opad, one block, then room for the inner digest: the outer message, reused. */
  outerMessage: Buffer;
}

/** The pads of each secret, made once: the secret is revealed here only, never kept as a string. */
const PADS = new WeakMap<Secret, Pads>();

function padsOf(secret: Secret): Pads {
  let pads = PADS.get(secret);
  if (pads !== undefined) return pads;
  let key = Buffer.from(secret.reveal(), 'utf8');
  // A key longer than a block is hashed first (RFC 2104 section 2); a shorter one is zero-padded.
  if (key.length > BLOCK_BYTES) key = hash('sha256', key, 'buffer');
  const inner = Buffer.alloc(BLOCK_BYTES, 0x36);
  const outerMessage = Buffer.alloc(BLOCK_BYTES + DIGEST_BYTES, 0x5c);
  for (let i = 0; i < key.length; i++) {
    inner[i]! ^= key[i]!;
    outerMessage[i]! ^= key[i]!;
  }
  key.fill(0);
  PADS.set(secret, (pads = { inner, outerMessage }));
  return pads;
}

const DOMAINS: Record<MacPurpose, Buffer> = {
  leg: Buffer.from('bankstream/leg/v1', 'utf8'),
  changelog: Buffer.from('bankstream/changelog/v1', 'utf8'),
  directory: Buffer.from('bankstream/directory/v1', 'utf8'),
  'instance-call': Buffer.from('bankstream/instance-call/v1', 'utf8'),
};

/** Keys for tests and `bankstream dev`: never for production (the secret is whatever the caller passes). */
export function clusterKeysFromSecret(secret: string, id = 'k1'): ClusterKeys {
  return { current: { id, secret: new Secret(secret) }, previous: undefined };
}
