// Authenticated internal records. Everything the engine writes for itself — records to a repartition
// topic (the bank's legs) and changelog records — carries an HMAC-SHA256 under the cluster secret
// (src/config/cluster-key.ts), so that a record written by anyone else (an open broker, a leaked
// producer credential, a missing ACL) is never applied: a repartition record that does not verify goes
// to the dead-letter topic, a changelog record that does not verify stops the restore.
//
// Headers (UTF-8 names, added after every other header):
//   bankstream.mac.key   the id of the key that made the MAC (CLUSTER_SECRET_ID), so rotation never guesses
//   bankstream.mac       the 32-byte HMAC
//   bankstream.mac.task  repartition records only: the partition of the task that produced the record
// What a MAC covers (length-prefixed parts, one domain per purpose):
//   'leg'        topic, partition, producing task, key, value, every other header (sorted by name); not the
//                timestamp, which a topic with message.timestamp.type=LogAppendTime rewrites
//   'changelog'  store name, partition, key, value (the topic name follows from the store and the app id)
// Binding the topic and partition means a valid record cannot be moved to another partition (another
// task); binding the value means no field of it can be edited. A verbatim copy of a valid record at a
// later offset is NOT detected by the MAC (the producer cannot know the offset it signs for): see the
// README's security section for what covers that (ACLs).
import { type Logger } from 'pino';
import { type ClusterKeys, type MacCheck, signParts, verifyParts } from '../config/cluster-key.ts';
import { type Headers } from '../topology/types.ts';
import { FatalStreamsError } from './errors.ts';
import { type FetchedRecord } from './fetcher.ts';

export const MAC_KEY_HEADER = 'bankstream.mac.key';
export const MAC_HEADER = 'bankstream.mac';
export const MAC_TASK_HEADER = 'bankstream.mac.task';

const MAC_HEADERS: ReadonlySet<string> = new Set([MAC_KEY_HEADER, MAC_HEADER, MAC_TASK_HEADER]);

/** A record of a repartition topic as the MAC sees it (an output before it is sent, an input as fetched). */
export interface RepartitionRecord {
  topic: string;
  partition: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Headers;
}

/** Why a record was refused, for the DLQ header, the log and readiness. */
export type RecordRejection = Exclude<MacCheck, { ok: true }>['reason'] | 'bad_task';

export type RecordCheck = { ok: true; previousKey: boolean; unsigned: boolean } | { ok: false; reason: RecordRejection };

/** The record's headers with the MAC headers set for `producerTask` (any MAC headers it had are replaced). */
export function signRepartitionRecord(keys: ClusterKeys, record: RepartitionRecord, producerTask: number): Headers {
  const task = String(producerTask);
  const { keyId, mac } = signParts(keys, 'leg', legParts(record, task));
  const headers: Record<string, Buffer> = withoutMacHeaders(record.headers);
  headers[MAC_TASK_HEADER] = Buffer.from(task, 'utf8');
  headers[MAC_KEY_HEADER] = Buffer.from(keyId, 'utf8');
  headers[MAC_HEADER] = mac;
  return headers;
}

/**
 * Verifies a fetched repartition record. `acceptUnsigned` (an upgrade from a version that did not sign,
 * LEGS_ACCEPT_UNSIGNED) lets a record WITHOUT any MAC header through, reported as unsigned; a record
 * with a wrong MAC is refused whatever the setting.
 */
export function verifyRepartitionRecord(keys: ClusterKeys, record: RepartitionRecord, acceptUnsigned = false): RecordCheck {
  const keyId = record.headers[MAC_KEY_HEADER];
  const mac = record.headers[MAC_HEADER];
  const task = record.headers[MAC_TASK_HEADER];
  if (keyId === undefined && mac === undefined && task === undefined && acceptUnsigned) return { ok: true, previousKey: false, unsigned: true };
  const taskText = task?.toString('utf8');
  if (taskText !== undefined && !/^(0|[1-9][0-9]{0,8})$/.test(taskText)) return { ok: false, reason: 'bad_task' };
  if (taskText === undefined) return { ok: false, reason: 'missing_mac' };
  const check = verifyParts(keys, 'leg', legParts(record, taskText), keyId?.toString('utf8'), mac);
  return check.ok ? { ok: true, previousKey: check.previous, unsigned: false } : check;
}

/** The headers of a verified repartition record as processors see them: without the MAC headers. */
export function withoutMacHeaders(headers: Headers): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const name of Object.keys(headers)) if (!MAC_HEADERS.has(name)) out[name] = headers[name]!;
  return out;
}

/** True when a record carries any MAC header (cheap test before copying headers). */
export function hasMacHeaders(headers: Headers): boolean {
  return headers[MAC_HEADER] !== undefined || headers[MAC_KEY_HEADER] !== undefined || headers[MAC_TASK_HEADER] !== undefined;
}

/** The producing task a repartition record names (for DLQ headers and logs), or undefined. */
export function producerTaskOf(headers: Headers): string | undefined {
  return headers[MAC_TASK_HEADER]?.toString('utf8');
}

function legParts(record: RepartitionRecord, task: string): Array<Buffer | string | null> {
  const parts: Array<Buffer | string | null> = [record.topic, String(record.partition), task, record.key, record.value];
  const names = Object.keys(record.headers).filter((name) => !MAC_HEADERS.has(name)).sort();
  for (const name of names) parts.push(name, record.headers[name]!);
  return parts;
}

// ---- changelog records ------------------------------------------------------------------------

/** The MAC headers of one changelog record, as the client's Map of Buffers (what the producer sends). */
export function signChangelogEntry(keys: ClusterKeys, store: string, partition: number, key: Buffer, value: Buffer | null): Map<Buffer, Buffer> {
  const { keyId, mac } = signParts(keys, 'changelog', [store, String(partition), key, value]);
  return new Map([
    [KEY_HEADER_BYTES, keyIdBytes(keyId)],
    [MAC_HEADER_BYTES, mac],
  ]);
}

/** Key ids as header values, made once each (a handful of ids at most: current and previous). */
const KEY_ID_BYTES = new Map<string, Buffer>();

function keyIdBytes(keyId: string): Buffer {
  let bytes = KEY_ID_BYTES.get(keyId);
  if (bytes === undefined) {
    if (KEY_ID_BYTES.size > 16) KEY_ID_BYTES.clear();
    KEY_ID_BYTES.set(keyId, (bytes = Buffer.from(keyId, 'utf8')));
  }
  return bytes;
}

const KEY_HEADER_BYTES = Buffer.from(MAC_KEY_HEADER, 'utf8');
const MAC_HEADER_BYTES = Buffer.from(MAC_HEADER, 'utf8');

/** Verifies a fetched changelog record of `store` (unsigned ones pass only with `acceptUnsigned`, CHANGELOG_ACCEPT_UNSIGNED). */
export function verifyChangelogRecord(
  keys: ClusterKeys,
  store: string,
  record: { partition: number; key: Buffer | null; value: Buffer | null; headers: Headers },
  acceptUnsigned = false,
): RecordCheck {
  const keyId = record.headers[MAC_KEY_HEADER];
  const mac = record.headers[MAC_HEADER];
  if (keyId === undefined && mac === undefined && acceptUnsigned) return { ok: true, previousKey: false, unsigned: true };
  const check = verifyParts(keys, 'changelog', [store, String(record.partition), record.key, record.value], keyId?.toString('utf8'), mac);
  return check.ok ? { ok: true, previousKey: check.previous, unsigned: false } : check;
}

/** Exact records an operator chose to skip at restore (CHANGELOG_SKIP_RECORDS), as "topic:partition:offset". */
export function recordCoordinate(topic: string, partition: number, offset: bigint): string {
  return `${topic}:${partition}:${offset}`;
}

// ---- policies: what the engine does with a record that does not verify -------------------------

/** The upgrade and incident switches (config RecordAuthConfig). */
export interface RecordAuthOptions {
  changelogAcceptUnsigned?: boolean;
  legsAcceptUnsigned?: boolean;
  changelogSkipRecords?: ReadonlySet<string>;
}

/** A changelog record that does not verify: the store is not built from it, the restore stops. */
export class UnauthenticatedChangelogRecordError extends FatalStreamsError {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  constructor(topic: string, partition: number, offset: bigint, store: string, reason: RecordRejection) {
    const at = recordCoordinate(topic, partition, offset);
    super(
      'changelog_record_unauthenticated',
      `changelog record ${at} of store ${store} does not verify (${reason}): it was not written by this application with ` +
        'this CLUSTER_SECRET, and the store is not restored from it. Inspect it (and find who could write the topic); if it is ' +
        `forged, restart with CHANGELOG_SKIP_RECORDS=${at} to restore without it, and keep that setting until a newer ` +
        "value of the record's key has been written and compaction has removed the forged one " +
        '(docs/operations.md, "A changelog record does not verify")',
    );
    this.name = 'UnauthenticatedChangelogRecordError';
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
  }
}

/** Checks the changelog records restore and standbys apply: keep (true), skip (false, operator's list) or throw. */
export type ChangelogCheck = (store: string, record: FetchedRecord) => boolean;

export function changelogVerifier(keys: ClusterKeys, options: RecordAuthOptions, log: Logger): ChangelogCheck {
  const skip = options.changelogSkipRecords ?? new Set<string>();
  const acceptUnsigned = options.changelogAcceptUnsigned ?? false;
  return (store, record) => {
    if (skip.size > 0 && skip.has(recordCoordinate(record.topic, record.partition, record.offset))) {
      log.warn({ topic: record.topic, partition: record.partition, offset: String(record.offset), store }, 'changelog record skipped (CHANGELOG_SKIP_RECORDS)');
      return false;
    }
    const check = verifyChangelogRecord(keys, store, record, acceptUnsigned);
    if (!check.ok) throw new UnauthenticatedChangelogRecordError(record.topic, record.partition, record.offset, store, check.reason);
    return true;
  };
}
