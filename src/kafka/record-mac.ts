// Authenticated internal records. Everything the engine writes for itself — records to a repartition
// topic (the bank's legs) and changelog records — carries an HMAC-SHA256 under the cluster secret
// (src/config/cluster-key.ts), so that a record written by anyone else (an open broker, a leaked
// producer credential, a missing ACL) is never applied: a repartition record that does not verify goes
// to the dead-letter topic, a changelog record that does not verify stops the restore.
//
// One header, `bankstream.mac` (added after every other header), packs what verification needs:
//   byte 0        format version (1)
//   byte 1        n, the length of the key id (1–255 bytes)
//   n bytes       the id of the key that made the MAC (CLUSTER_SECRET_ID), so rotation never guesses
//   4 bytes       repartition records only: the partition of the task that produced the record (uint32 BE)
//   32 bytes      the HMAC-SHA256
// One header rather than one per field: the client encodes, sends and decodes every header of every record.
// What a MAC covers (length-prefixed parts, one domain per purpose):
//   'leg'        topic, partition, producing task, key, value, every other header (sorted by name); not the
//                timestamp, which a topic with message.timestamp.type=LogAppendTime rewrites
//   'changelog'  store name, partition, key, value (the topic name follows from the store and the app id)
// Binding the topic and partition means a valid record cannot be moved to another partition (another
// task); binding the value means no field of it can be edited. A verbatim copy of a valid record at a
// later offset is NOT detected by the MAC (the producer cannot know the offset it signs for): the bank
// applies a credit leg at most once per (from, transferId) (src/bank/transfer.ts credit), settle and refund
// legs only against an in-flight entry; for changelogs see docs/security.md.
import { type ClusterKeys, MAC_BYTES, type MacCheck, signPartsInto, verifyParts } from '../config/cluster-key.ts';
import type { Headers } from './records.ts';

export const MAC_HEADER = 'bankstream.mac';
const MAC_FORMAT_VERSION = 1;
const TASK_BYTES = 4;

/** A record of a repartition topic as the MAC sees it (an output before it is sent, an input as fetched). */
export interface RepartitionRecord {
  topic: string;
  partition: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Headers;
}

/** Why a record was refused, for the DLQ header, the log and readiness. */
export type RecordRejection = Exclude<MacCheck, { ok: true }>['reason'] | 'malformed_mac';

export type RecordCheck =
  | { ok: true; previousKey: boolean; unsigned: boolean }
  | { ok: false; reason: RecordRejection };

/** The MAC header's fields as written (undefined when the header does not parse). */
interface MacFields {
  keyId: string;
  task: number | undefined;
  mac: Buffer;
}

/** The MAC header of a record, signed under the current key; the MAC is written straight into it. */
function signedHeader(
  keys: ClusterKeys,
  purpose: 'leg' | 'changelog',
  parts: ReadonlyArray<Buffer | string | null>,
  task: number | undefined,
): Buffer {
  // The version, id length and id bytes come from one template per key id (one copy, no per-byte writes).
  const prefix = headerPrefix(keys.current.id);
  const out = Buffer.allocUnsafe(prefix.length + (task === undefined ? 0 : TASK_BYTES) + MAC_BYTES);
  let at = prefix.copy(out, 0);
  if (task !== undefined) at = out.writeUInt32BE(task, at);
  signPartsInto(keys, purpose, parts, out, at);
  return out;
}

function unpackMac(header: Buffer, withTask: boolean): MacFields | undefined {
  if (header.length < 2 || header[0] !== MAC_FORMAT_VERSION) return undefined;
  const idLength = header[1]!;
  const taskAt = 2 + idLength;
  const macAt = taskAt + (withTask ? TASK_BYTES : 0);
  if (idLength === 0 || header.length !== macAt + MAC_BYTES) return undefined;
  return {
    keyId: header.toString('utf8', 2, taskAt),
    task: withTask ? header.readUInt32BE(taskAt) : undefined,
    mac: header.subarray(macAt),
  };
}

/** The record's headers with the MAC header set for `producerTask` (a MAC header it had is replaced). */
export function signRepartitionRecord(keys: ClusterKeys, record: RepartitionRecord, producerTask: number): Headers {
  const header = signedHeader(keys, 'leg', legParts(record, producerTask), producerTask);
  const headers: Record<string, Buffer> = hasMacHeaders(record.headers)
    ? withoutMacHeaders(record.headers)
    : { ...record.headers };
  headers[MAC_HEADER] = header;
  return headers;
}

/**
 * Verifies a fetched repartition record. `acceptUnsigned` (an upgrade from a version that did not sign,
 * LEGS_ACCEPT_UNSIGNED) lets a record WITHOUT a MAC header through, reported as unsigned; a record
 * with a wrong MAC is refused whatever the setting.
 */
export function verifyRepartitionRecord(
  keys: ClusterKeys,
  record: RepartitionRecord,
  acceptUnsigned = false,
): RecordCheck {
  const header = record.headers[MAC_HEADER];
  if (header === undefined)
    return acceptUnsigned ? { ok: true, previousKey: false, unsigned: true } : { ok: false, reason: 'missing_mac' };
  const fields = unpackMac(header, true);
  if (fields === undefined) return { ok: false, reason: 'malformed_mac' };
  const check = verifyParts(keys, 'leg', legParts(record, fields.task!), fields.keyId, fields.mac);
  return check.ok ? { ok: true, previousKey: check.previous, unsigned: false } : check;
}

/** The headers of a verified repartition record as processors see them: without the MAC header. */
export function withoutMacHeaders(headers: Headers): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const name in headers) if (name !== MAC_HEADER) out[name] = headers[name]!;
  return out;
}

/** True when a record carries the MAC header (cheap test before copying headers). */
export function hasMacHeaders(headers: Headers): boolean {
  return headers[MAC_HEADER] !== undefined;
}

/** The producing task a repartition record names (for DLQ headers and logs), or undefined. */
export function producerTaskOf(headers: Headers): string | undefined {
  const header = headers[MAC_HEADER];
  const task = header === undefined ? undefined : unpackMac(header, true)?.task;
  return task === undefined ? undefined : String(task);
}

function legParts(record: RepartitionRecord, task: number): Array<Buffer | string | null> {
  const parts: Array<Buffer | string | null> = [
    textBytes(record.topic),
    decimal(record.partition),
    decimal(task),
    record.key,
    record.value,
  ];
  let names: string[] | undefined;
  for (const name in record.headers) if (name !== MAC_HEADER) (names ??= []).push(name);
  if (names === undefined) return parts;
  if (names.length > 1) names.sort();
  for (const name of names) parts.push(name, record.headers[name]!);
  return parts;
}

/** Partition numbers as the decimal text the MAC covers, as UTF-8 bytes made once each for the usual range. */
const DECIMALS: Buffer[] = [];
const DECIMALS_CACHED_MAX = 4096;

function decimal(n: number): Buffer | string {
  if (Number.isInteger(n) && n >= 0 && n < DECIMALS_CACHED_MAX) return (DECIMALS[n] ??= Buffer.from(String(n), 'utf8'));
  return String(n);
}

/** Topic and store names as UTF-8 bytes, made once each (the same bytes as the text: the MAC is unchanged). Bounded. */
const TEXT_BYTES = new Map<string, Buffer>();
const TEXTS_CACHED_MAX = 1024;

function textBytes(text: string): Buffer | string {
  const bytes = TEXT_BYTES.get(text);
  if (bytes !== undefined) return bytes;
  if (TEXT_BYTES.size >= TEXTS_CACHED_MAX) return text;
  const made = Buffer.from(text, 'utf8');
  TEXT_BYTES.set(text, made);
  return made;
}

// ---- changelog records ------------------------------------------------------------------------

/** The MAC header of one changelog record, as the client's Map of Buffers (what the producer sends). */
export function signChangelogEntry(
  keys: ClusterKeys,
  store: string,
  partition: number,
  key: Buffer,
  value: Buffer | null,
): Map<Buffer, Buffer> {
  const headers = new Map<Buffer, Buffer>();
  headers.set(
    MAC_HEADER_BYTES,
    signedHeader(keys, 'changelog', [textBytes(store), decimal(partition), key, value], undefined),
  );
  return headers;
}

/** The start of a MAC header for each key id (version, id length, id), made once (current and previous at most). */
const HEADER_PREFIXES = new Map<string, Buffer>();

function headerPrefix(keyId: string): Buffer {
  let prefix = HEADER_PREFIXES.get(keyId);
  if (prefix === undefined) {
    const id = Buffer.from(keyId, 'utf8');
    if (id.length === 0 || id.length > 255)
      throw new Error(`a key id is 1 to 255 bytes (CLUSTER_SECRET_ID), not ${id.length}`);
    if (HEADER_PREFIXES.size > 16) HEADER_PREFIXES.clear();
    prefix = Buffer.allocUnsafeSlow(2 + id.length);
    prefix[0] = MAC_FORMAT_VERSION;
    prefix[1] = id.length;
    id.copy(prefix, 2);
    HEADER_PREFIXES.set(keyId, prefix);
  }
  return prefix;
}

const MAC_HEADER_BYTES = Buffer.from(MAC_HEADER, 'utf8');

/** Verifies a fetched changelog record of `store` (unsigned ones pass only with `acceptUnsigned`, CHANGELOG_ACCEPT_UNSIGNED). */
export function verifyChangelogRecord(
  keys: ClusterKeys,
  store: string,
  record: { partition: number; key: Buffer | null; value: Buffer | null; headers: Headers },
  acceptUnsigned = false,
): RecordCheck {
  const header = record.headers[MAC_HEADER];
  if (header === undefined)
    return acceptUnsigned ? { ok: true, previousKey: false, unsigned: true } : { ok: false, reason: 'missing_mac' };
  const fields = unpackMac(header, false);
  if (fields === undefined) return { ok: false, reason: 'malformed_mac' };
  const check = verifyParts(
    keys,
    'changelog',
    [textBytes(store), decimal(record.partition), record.key, record.value],
    fields.keyId,
    fields.mac,
  );
  return check.ok ? { ok: true, previousKey: check.previous, unsigned: false } : check;
}

/** Exact records an operator chose to skip at restore (CHANGELOG_SKIP_RECORDS), as "topic:partition:offset". */
export function recordCoordinate(topic: string, partition: number, offset: bigint): string {
  return `${topic}:${partition}:${offset}`;
}
