// The cluster secret: one key shared by every instance of an application, which authenticates what
// instances tell each other through Kafka and HTTP (internal legs, changelog records, the instance
// directory, instance-to-instance calls). Nothing that only reads a topic or writes upstream commands
// holds it, so a producer credential, an open broker or a missing ACL is not enough to forge them.
//
// Rotation: start every instance with the new key as CLUSTER_SECRET (new CLUSTER_SECRET_ID) and the old
// one as CLUSTER_SECRET_PREVIOUS (its id as CLUSTER_SECRET_PREVIOUS_ID); once every instance signs with
// the new key and the records signed with the old one are consumed (or past retention), drop the
// previous key. A MAC names the key id that made it, so verification never guesses.
// The settings are parsed in config.ts (clusterKeysConfig); this file holds the keys' use.
import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto';
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
export function signParts(keys: ClusterKeys, purpose: MacPurpose, parts: readonly (Buffer | string | null | undefined)[]): Mac {
  return { keyId: keys.current.id, mac: computeMac(keys.current.secret, purpose, parts) };
}

export type MacCheck = { ok: true; keyId: string; previous: boolean } | { ok: false; reason: 'unknown_key' | 'bad_mac' | 'missing_mac' };

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
  const expected = computeMac(key.secret, purpose, parts);
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return { ok: false, reason: 'bad_mac' };
  return { ok: true, keyId, previous: key !== keys.current };
}

function computeMac(secret: Secret, purpose: MacPurpose, parts: readonly (Buffer | string | null | undefined)[]): Buffer {
  // The message is assembled into one buffer and hashed with one update: on the engine's hot path (a MAC
  // per leg and per changelog record) each native call counts. The bytes are the same as always.
  const domain = DOMAINS[purpose];
  let size = domain.length;
  for (const part of parts) size += 5 + (part === null || part === undefined ? 0 : typeof part === 'string' ? Buffer.byteLength(part, 'utf8') : part.length);
  const message = Buffer.allocUnsafe(size);
  let at = domain.copy(message, 0);
  for (const part of parts) {
    // Tag 0 = absent (null key), 1 = present; then a 4-byte length: "ab"+"c" never equals "a"+"bc".
    if (part === null || part === undefined) {
      message[at] = 0;
      message.writeUInt32BE(0, at + 1);
      at += 5;
    } else if (typeof part === 'string') {
      const written = message.write(part, at + 5, 'utf8');
      message[at] = 1;
      message.writeUInt32BE(written, at + 1);
      at += 5 + written;
    } else {
      message[at] = 1;
      message.writeUInt32BE(part.length, at + 1);
      at += 5 + part.copy(message, at + 5);
    }
  }
  return createHmac('sha256', keyObject(secret)).update(message).digest();
}

const DOMAINS: Record<MacPurpose, Buffer> = {
  leg: Buffer.from('bankstream/leg/v1', 'utf8'),
  changelog: Buffer.from('bankstream/changelog/v1', 'utf8'),
  directory: Buffer.from('bankstream/directory/v1', 'utf8'),
  'instance-call': Buffer.from('bankstream/instance-call/v1', 'utf8'),
};

/** One KeyObject per secret: building the HMAC key from the string at every MAC is measurable. */
const KEY_OBJECTS = new WeakMap<Secret, KeyObject>();

function keyObject(secret: Secret): KeyObject {
  let key = KEY_OBJECTS.get(secret);
  if (key === undefined) KEY_OBJECTS.set(secret, (key = createSecretKey(Buffer.from(secret.reveal(), 'utf8'))));
  return key;
}

/** Keys for tests and `bankstream dev`: never for production (the secret is whatever the caller passes). */
export function clusterKeysFromSecret(secret: string, id = 'k1'): ClusterKeys {
  return { current: { id, secret: new Secret(secret) }, previous: undefined };
}
