// Password hashing with scrypt (node:crypto), stored as "scrypt$<N>$<r>$<p>$<salt base64>$<hash base64>"
// (the format migrations/0001 documents). Parameters travel with each hash so they can be raised later
// without invalidating existing users. Passwords are never logged or kept beyond the call.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

// OWASP recommends N=2^17, r=8, p=1 (128 MiB); measured on this 2-core machine class that is ~0.8 s of a
// libuv thread per login, and LevelDB shares that thread pool. N=2^15 (32 MiB) costs ~0.2 s here and is
// still memory-hard; the parameters are stored with each hash, so they can be raised without a migration.
const COST_N = 1 << 15;
const BLOCK_R = 8;
const PARALLEL_P = 1;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
// N and r bound the memory scrypt may take; refuse stored parameters beyond it instead of allocating them.
const MAX_MEMORY_BYTES = 256 * 1024 * 1024;
export const PASSWORD_CHARS_MIN = 8;
export const PASSWORD_CHARS_MAX = 1024;

interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

function derive(password: string, salt: Buffer, params: ScryptParams, keyBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, keyBytes, { ...params, maxmem: MAX_MEMORY_BYTES }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

export async function hashPassword(password: string): Promise<string> {
  if (password.length < PASSWORD_CHARS_MIN || password.length > PASSWORD_CHARS_MAX) {
    throw new RangeError(`a password must have ${PASSWORD_CHARS_MIN} to ${PASSWORD_CHARS_MAX} characters`);
  }
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, { N: COST_N, r: BLOCK_R, p: PARALLEL_P }, KEY_BYTES);
  return ['scrypt', COST_N, BLOCK_R, PARALLEL_P, salt.toString('base64'), key.toString('base64')].join('$');
}

/** True when the password matches; false for a wrong password or an unusable stored hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed || password.length > PASSWORD_CHARS_MAX) return false;
  const key = await derive(password, parsed.salt, parsed.params, parsed.hash.length);
  return timingSafeEqual(key, parsed.hash);
}

// A hash to verify against when the user does not exist, so that an unknown user costs the same time as a
// wrong password and response times do not reveal which user ids exist. Built at API start (prepareDecoy):
// built at the first unknown-user login, that login alone would take two scrypt runs and tell.
let decoy: Promise<string> | undefined;
let decoyBuilt = false;
export function prepareDecoy(): Promise<string> {
  decoy ??= hashPassword(randomBytes(24).toString('base64')).then((hash) => ((decoyBuilt = true), hash));
  return decoy;
}

/** Whether the decoy hash exists already (then an unknown user's login is one scrypt run, like a known one's). */
export function decoyReady(): boolean {
  return decoyBuilt;
}

export async function burnPasswordCheck(password: string): Promise<void> {
  await verifyPassword(password, await prepareDecoy());
}

function parseHash(stored: string): { params: ScryptParams; salt: Buffer; hash: Buffer } | undefined {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![N, r, p].every((n) => Number.isSafeInteger(n) && n > 0)) return undefined;
  if (128 * N * r > MAX_MEMORY_BYTES) return undefined;
  const salt = Buffer.from(parts[4]!, 'base64');
  const hash = Buffer.from(parts[5]!, 'base64');
  if (salt.length === 0 || hash.length < 16) return undefined;
  return { params: { N, r, p }, salt, hash };
}
