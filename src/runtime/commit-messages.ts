// What one commit's transaction sends, made from the outputs and the stores' changelog entries: the
// messages (with header names as bytes), their split into sends the broker accepts, and the changelog
// offsets the transaction reached (the stores' checkpoints).
import type { MessageToProduce } from '@platformatic/kafka';
import type { TaskStore } from '../stores/types.ts';
import type { OutputRecord } from '../topology/task-graph.ts';
import { tpKey } from '../kafka/fetcher.ts';
import type { StreamTask } from './task.ts';

/** What one transaction carries, fixed when the commit starts (step 1): later processing cannot change it. */
export interface PreparedCommit {
  startedMs: number;
  /** The generation the tasks were processed under (their offsets are fenced by it). */
  generationId: number;
  records: number;
  outputs: number;
  messages: MessageToProduce[];
  changelogCounts: Map<string, { task: StreamTask; store: string; count: number }>;
  /** The stores whose committing layer this transaction writes. */
  flushes: Array<{ task: StreamTask; name: string; store: TaskStore<unknown> }>;
  /** Each task's positions when the commit started: the offsets the transaction commits. */
  positions: Array<{ task: StreamTask; positions: Map<string, bigint> }>;
}

/** Bytes of one partition's records per send, well below the broker's default message.max.bytes. */
export const SEND_PARTITION_BYTES_MAX = 512 * 1024;

/** Splits messages, keeping their order, so that no chunk holds more than `limit` bytes for one partition. */
export function chunkByPartitionBytes(messages: MessageToProduce[], limit: number): MessageToProduce[][] {
  const chunks: MessageToProduce[][] = [];
  let current: MessageToProduce[] = [];
  // Bytes of the current chunk per topic, indexed by partition (no key string built per message).
  let bytes = new Map<string, number[]>();
  for (const m of messages) {
    const partition = m.partition ?? 0;
    let perPartition = bytes.get(m.topic);
    if (perPartition === undefined) bytes.set(m.topic, (perPartition = []));
    const size = approximateSize(m);
    const before = perPartition[partition] ?? 0;
    if (current.length > 0 && before + size > limit) {
      chunks.push(current);
      current = [];
      bytes = new Map([[m.topic, (perPartition = [])]]);
      perPartition[partition] = size;
    } else {
      perPartition[partition] = before + size;
    }
    current.push(m);
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

function approximateSize(m: MessageToProduce): number {
  let size = 32 + (m.key?.length ?? 0) + (m.value?.length ?? 0);
  if (m.headers instanceof Map) for (const [k, v] of m.headers) size += 8 + k.length + v.length;
  return size;
}

export function toMessage(o: OutputRecord): MessageToProduce {
  const message: MessageToProduce = { topic: o.topic, partition: o.partition, timestamp: BigInt(o.timestamp) };
  if (o.key) message.key = o.key;
  if (o.value) message.value = o.value;
  const names = Object.keys(o.headers);
  // The client's default serializers take Buffer header keys too, so headers go as a Map of Buffers.
  if (names.length > 0) message.headers = new Map(names.map((name) => [headerNameBytes(name), o.headers[name]!]));
  return message;
}

/** Header names as bytes, made once each: every leg carries the same few (the MAC headers). Bounded. */
const HEADER_NAME_BYTES = new Map<string, Buffer>();
const HEADER_NAMES_CACHED_MAX = 1024;

function headerNameBytes(name: string): Buffer {
  let bytes = HEADER_NAME_BYTES.get(name);
  if (bytes === undefined) {
    bytes = Buffer.from(name, 'utf8');
    if (HEADER_NAME_BYTES.size < HEADER_NAMES_CACHED_MAX) HEADER_NAME_BYTES.set(name, bytes);
  }
  return bytes;
}

/** Next changelog offset per "partition/store": the lowest base offset + the count is never past the truth. */
export function changelogOffsets(
  offsets: Array<{ topic: string; partition: number; offset: bigint }>,
  counts: Map<string, { task: { partition: number }; store: string; count: number }>,
): Map<string, bigint> {
  const base = new Map<string, bigint>();
  for (const o of offsets) {
    const key = tpKey(o.topic, o.partition);
    const previous = base.get(key);
    if (previous === undefined || o.offset < previous) base.set(key, o.offset);
  }
  const out = new Map<string, bigint>();
  for (const [key, { task, store, count }] of counts) {
    const first = base.get(key);
    if (first !== undefined) out.set(`${task.partition}/${store}`, first + BigInt(count));
  }
  return out;
}
