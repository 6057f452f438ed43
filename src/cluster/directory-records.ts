// The records of the instance directory (directory.ts) and their trust rules, as pure functions: the
// signed value and tombstone header, their verification, the checked fields, and which claim wins.
import { type ClusterKeys, signParts, verifyParts } from '../config/cluster-key.ts';

export interface InstanceRecord {
  instanceId: string;
  url: string;
  /** Consumer group generation of the claim; -1 before the first assignment. */
  generation: number;
  /** Partitions whose tasks run on this instance (empty unless state is RUNNING). */
  partitions: number[];
  state: string;
  /** Partitions it keeps standby tasks for (stale reads); absent in records of earlier versions. */
  standby?: number[];
  /** ISO-8601 time of publication. */
  at: string;
}

export interface Owner {
  instanceId: string;
  url: string;
}

/** Why a directory record was ignored (the label of the rejection counter). */
export type RejectReason = 'unsigned' | 'unknown_key' | 'bad_mac' | 'malformed' | 'url_not_allowed' | 'replayed';

/** Header of a tombstone: `<keyId>.<mac base64url>.<at>`; a record's MAC travels in its value's envelope. */
export const TOMBSTONE_MAC_HEADER = 'bankstream.directory-mac';
const RECORD_BYTES_MAX = 64 * 1024;
const INSTANCE_ID = /^[A-Za-z0-9._-]{1,200}$/;
const PARTITIONS_MAX = 10_000;

/**
 * Whether a record may replace what is held for its instance. The floor is the highest generation and the
 * latest time accepted so far (kept across tombstones), so a replayed record, always older on both, stays out:
 *   - a later generation: a new claim (its `at` may trail on a host whose clock is behind);
 *   - the same generation, not older: a status change within it;
 *   - no claim at all (a restarted instance before its first assignment, generation -1), not older.
 */
export function newerThan(record: InstanceRecord, atMs: number, floor: { generation: number; atMs: number }): boolean {
  if (record.generation > floor.generation) return true;
  if (atMs < floor.atMs) return false;
  return record.generation === floor.generation || record.partitions.length === 0;
}

/**
 * The claim with the highest generation wins, among claims of generations up to `maxGeneration` (the one
 * this instance is assigned in); two claims in the same generation (one of them stale, e.g. an instance that
 * crashed and came back) mean the partition is moving: nobody is named.
 */
export function ownerAmong(
  records: Iterable<InstanceRecord>,
  partition: number,
  maxGeneration: number | undefined,
): Owner | undefined {
  if (maxGeneration === undefined) return undefined;
  let best: InstanceRecord | undefined;
  let tie = false;
  for (const record of records) {
    if (record.generation > maxGeneration || !record.partitions.includes(partition)) continue;
    if (!best || record.generation > best.generation) {
      best = record;
      tie = false;
    } else if (record.generation === best.generation) tie = true;
  }
  return best && !tie ? { instanceId: best.instanceId, url: best.url } : undefined;
}

/** The value of a directory record: the record's JSON as a string, and a MAC over the key and those exact bytes. */
export function signedRecordValue(keys: ClusterKeys, record: InstanceRecord): Buffer {
  const json = JSON.stringify(record);
  const { keyId, mac } = signParts(keys, 'directory', [record.instanceId, json]);
  return Buffer.from(JSON.stringify({ v: 1, record: json, keyId, mac: mac.toString('base64url') }), 'utf8');
}

/** Verifies and parses a directory record value of the instance `key`. */
export function openRecordValue(
  keys: ClusterKeys,
  key: string,
  value: Buffer,
): { ok: true; record: InstanceRecord } | { ok: false; reason: RejectReason } {
  if (value.length > RECORD_BYTES_MAX) return { ok: false, reason: 'malformed' };
  let envelope: { v?: unknown; record?: unknown; keyId?: unknown; mac?: unknown };
  try {
    envelope = JSON.parse(value.toString('utf8')) as typeof envelope;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (typeof envelope !== 'object' || envelope === null || typeof envelope.record !== 'string')
    return { ok: false, reason: 'unsigned' };
  if (typeof envelope.keyId !== 'string' || typeof envelope.mac !== 'string') return { ok: false, reason: 'unsigned' };
  const mac = Buffer.from(envelope.mac, 'base64url');
  if (mac.toString('base64url') !== envelope.mac) return { ok: false, reason: 'bad_mac' };
  const check = verifyParts(keys, 'directory', [key, envelope.record], envelope.keyId, mac);
  if (!check.ok)
    return {
      ok: false,
      reason: check.reason === 'unknown_key' ? 'unknown_key' : check.reason === 'missing_mac' ? 'unsigned' : 'bad_mac',
    };
  const record = parseRecord(Buffer.from(envelope.record, 'utf8'));
  // Signed by an instance but naming another one: a bug or a copied record, either way not this key's claim.
  if (!record || record.instanceId !== key) return { ok: false, reason: 'malformed' };
  return { ok: true, record };
}

/**
 * The header that signs a tombstone: `<keyId> <mac> <at>`, separated by spaces, which none of the three may
 * hold (a key id may hold '.', and so does an ISO time: a '.'-separated header could not be read back).
 */
export function signedTombstoneHeader(keys: ClusterKeys, instanceId: string, at: string): Buffer {
  const { keyId, mac } = signParts(keys, 'directory', [instanceId, 'tombstone', at]);
  return Buffer.from(`${keyId} ${mac.toString('base64url')} ${at}`, 'utf8');
}

export function openTombstoneHeader(
  keys: ClusterKeys,
  instanceId: string,
  header: Buffer | undefined,
): { ok: true; atMs: number } | { ok: false; reason: RejectReason } {
  if (!header) return { ok: false, reason: 'unsigned' };
  const [keyId, mac, at, extra] = header.toString('utf8').split(' ');
  if (keyId === undefined || mac === undefined || at === undefined || extra !== undefined)
    return { ok: false, reason: 'malformed' };
  const macBytes = Buffer.from(mac, 'base64url');
  if (macBytes.toString('base64url') !== mac) return { ok: false, reason: 'bad_mac' };
  const check = verifyParts(keys, 'directory', [instanceId, 'tombstone', at], keyId, macBytes);
  if (!check.ok) return { ok: false, reason: check.reason === 'unknown_key' ? 'unknown_key' : 'bad_mac' };
  const atMs = Date.parse(at);
  return Number.isFinite(atMs) ? { ok: true, atMs } : { ok: false, reason: 'malformed' };
}

/** The record's fields, each checked: ids, partitions and times as the publisher writes them. */
export function parseRecord(value: Buffer): InstanceRecord | undefined {
  try {
    const v = JSON.parse(value.toString('utf8')) as Partial<InstanceRecord>;
    const partitionList = (list: unknown) =>
      Array.isArray(list) &&
      list.length <= PARTITIONS_MAX &&
      list.every((p) => Number.isSafeInteger(p) && p >= 0 && p < PARTITIONS_MAX);
    const valid =
      typeof v.instanceId === 'string' &&
      INSTANCE_ID.test(v.instanceId) &&
      typeof v.url === 'string' &&
      /^https?:\/\//.test(v.url) &&
      Number.isSafeInteger(v.generation) &&
      v.generation! >= -1 &&
      partitionList(v.partitions) &&
      typeof v.state === 'string' &&
      typeof v.at === 'string' &&
      Number.isFinite(Date.parse(v.at)) &&
      (v.standby === undefined || partitionList(v.standby));
    return valid ? (v as InstanceRecord) : undefined;
  } catch {
    return undefined;
  }
}
