// The credential of an instance-to-instance call (a proxied account read). The user's bearer token never
// leaves the instance that verified it: the caller sends instead a short-lived credential, MACed with the
// cluster secret (purpose 'instance-call'), that names
//   iss  the calling instance,        aud  the target instance (only it accepts the credential),
//   sub/role  the caller's VERIFIED principal (the target re-checks that principal's rights itself),
//   method/path  the one request it is good for,   iat/exp  seconds, at most INSTANCE_CALL_TTL_S apart.
// Wire form (header X-Bankstream-Instance-Call): `v1.<keyId>.<payload base64url>.<mac base64url>`.
// A credential captured on the wire is good for the same read on the same target for a few seconds: the
// network between instances should still be TLS (docs/security.md).
import { type ClusterKeys, signParts, verifyParts } from '../config/cluster-key.ts';
import type { Principal } from './principal.ts';
import { isRole } from './users.ts';

export const INSTANCE_CALL_HEADER = 'X-Bankstream-Instance-Call';
/** Lifetime of a credential: a proxied read takes at most HTTP_PROXY_TIMEOUT_MS (bounded to 60 s). */
export const INSTANCE_CALL_TTL_S = 30;
const CREDENTIAL_CHARS_MAX = 4096;
const ID = /^[A-Za-z0-9._@:+/=-]{1,200}$/;

export interface InstanceCallClaims {
  iss: string;
  aud: string;
  sub: string;
  role: Principal['role'];
  method: string;
  path: string;
  iat: number;
  exp: number;
}

export interface InstanceCallTarget {
  caller: string;
  target: string;
  method: string;
  path: string;
}

/** A credential for one call to `target`, on behalf of an already verified principal. */
export function signInstanceCall(
  keys: ClusterKeys,
  principal: Principal,
  call: InstanceCallTarget,
  nowMs = Date.now(),
): string {
  const iat = Math.floor(nowMs / 1000);
  // Never outlives the user's own token.
  const exp = Math.min(iat + INSTANCE_CALL_TTL_S, Math.floor(principal.expiresAtMs / 1000));
  const claims: InstanceCallClaims = {
    iss: call.caller,
    aud: call.target,
    sub: principal.subject,
    role: principal.role,
    method: call.method,
    path: call.path,
    iat,
    exp,
  };
  const payload = Buffer.from(JSON.stringify(claims), 'utf8').toString('base64url');
  const { keyId, mac } = signParts(keys, 'instance-call', [payload]);
  return `v1.${keyId}.${payload}.${mac.toString('base64url')}`;
}

export type InstanceCallCheck = { ok: true; principal: Principal; caller: string } | { ok: false; reason: string };

/** Verifies a credential for this instance (`self`) and this request; the principal it carries, or why not. */
export function verifyInstanceCall(
  keys: ClusterKeys,
  credential: string,
  expected: { self: string; method: string; path: string; clockToleranceS: number },
  nowMs = Date.now(),
): InstanceCallCheck {
  if (credential.length > CREDENTIAL_CHARS_MAX) return { ok: false, reason: 'the credential is too long' };
  const parts = credential.split('.');
  if (parts.length !== 4 || parts[0] !== 'v1')
    return { ok: false, reason: 'the credential is not v1.<keyId>.<payload>.<mac>' };
  const [, keyId, payload, mac] = parts as [string, string, string, string];
  const macBytes = Buffer.from(mac, 'base64url');
  // Canonical encoding only: base64url decoders ignore the unused bits of the last character, so two
  // spellings of one MAC would otherwise both pass.
  if (macBytes.toString('base64url') !== mac)
    return { ok: false, reason: 'the credential MAC is not canonical base64url' };
  const check = verifyParts(keys, 'instance-call', [payload], keyId, macBytes);
  if (!check.ok) return { ok: false, reason: `the credential does not verify (${check.reason})` };
  let claims: Partial<InstanceCallClaims>;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Partial<InstanceCallClaims>;
  } catch {
    return { ok: false, reason: 'the credential payload is not JSON' };
  }
  if (typeof claims !== 'object' || claims === null)
    return { ok: false, reason: 'the credential payload is not an object' };
  const nowS = nowMs / 1000;
  const { iss, aud, sub, role, method, path, iat, exp } = claims;
  if (typeof iss !== 'string' || !ID.test(iss) || typeof sub !== 'string' || !ID.test(sub) || !isRole(role))
    return { ok: false, reason: 'the credential names no valid caller or principal' };
  if (aud !== expected.self) return { ok: false, reason: 'the credential is for another instance' };
  if (method !== expected.method || path !== expected.path)
    return { ok: false, reason: 'the credential is for another request' };
  if (!Number.isSafeInteger(iat) || !Number.isSafeInteger(exp) || exp! - iat! > INSTANCE_CALL_TTL_S || exp! < iat!)
    return { ok: false, reason: 'the credential has an invalid lifetime' };
  if (iat! > nowS + expected.clockToleranceS) return { ok: false, reason: 'the credential is not valid yet' };
  if (exp! <= nowS - expected.clockToleranceS) return { ok: false, reason: 'the credential has expired' };
  return { ok: true, caller: iss, principal: Object.freeze({ subject: sub, role, expiresAtMs: exp! * 1000 }) };
}
