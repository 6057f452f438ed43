// What a run wrote to the broker, read from the broker's own log folder: for every partition folder
// (<log.dirs>/<topic>-<partition>/*.log) the record batches appended since a snapshot, walked header by
// header (Kafka's on-disk format is the v2 record batch of the protocol), counting data records,
// transaction markers (control batches) and bytes as stored (after compression, headers included).
// Only for a broker on this machine (scripts/kafka.sh); the bench reports nothing when it is not.
import { existsSync, readFileSync } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

export interface WriteTally {
  /** Data records (messages) appended. */
  records: number;
  /** Control records: transaction commit/abort markers, one per partition a transaction touched. */
  markers: number;
  batches: number;
  /** Bytes of the appended batches as stored on disk. */
  bytes: number;
}

export const emptyTally = (): WriteTally => ({ records: 0, markers: 0, batches: 0, bytes: 0 });

// v2 record batch: baseOffset int64, batchLength int32 (bytes after this field), partitionLeaderEpoch
// int32, magic int8, crc uint32, attributes int16 (bit 5: control batch), lastOffsetDelta int32,
// baseTimestamp int64, maxTimestamp int64, producerId int64, producerEpoch int16, baseSequence int32,
// recordCount int32 (at byte 57), records.
const LENGTH_AT = 8;
const MAGIC_AT = 16;
const ATTRIBUTES_AT = 21;
const COUNT_AT = 57;
const HEADER_BYTES = 61;
const CONTROL_BIT = 0x20;

/** Adds every complete batch of `data` to `into`; a batch cut off at the end (being written) is left out. */
export function tallyBatches(data: Buffer, into: WriteTally = emptyTally()): WriteTally {
  let at = 0;
  while (at + HEADER_BYTES <= data.length) {
    const size = 12 + data.readInt32BE(at + LENGTH_AT);
    if (size < HEADER_BYTES || at + size > data.length) break;
    if (data.readInt8(at + MAGIC_AT) !== 2) throw new Error(`not a v2 record batch at byte ${at}`);
    const count = data.readInt32BE(at + COUNT_AT);
    if ((data.readInt16BE(at + ATTRIBUTES_AT) & CONTROL_BIT) !== 0) into.markers += count;
    else into.records += count;
    into.batches++;
    into.bytes += size;
    at += size;
  }
  return into;
}

/** Sizes of every segment file of the given topics: where a later tally starts reading. */
export type SegmentSnapshot = Map<string, number>;

/** The broker's log folder, from the server.properties on its command line; undefined when not found. */
export function brokerLogDir(pid: number | undefined): string | undefined {
  if (pid === undefined) return undefined;
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const properties = args.find((a) => a.endsWith('.properties'));
    if (!properties || !existsSync(properties)) return undefined;
    const line = readFileSync(properties, 'utf8')
      .split('\n')
      .find((l) => /^\s*log\.dirs?\s*=/.test(l));
    const dir = line?.split('=')[1]?.split(',')[0]?.trim();
    return dir && existsSync(dir) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** The topic of a partition folder name ("<topic>-<partition>"), or undefined for other folders. */
export function topicOfFolder(folder: string): string | undefined {
  const match = /^(.+)-(\d+)$/.exec(folder);
  return match ? match[1] : undefined;
}

async function segmentFiles(logDir: string, topics: ReadonlySet<string>): Promise<string[]> {
  const files: string[] = [];
  for (const folder of await readdir(logDir)) {
    const topic = topicOfFolder(folder);
    if (topic === undefined || !topics.has(topic)) continue;
    for (const file of await readdir(path.join(logDir, folder)).catch(() => [] as string[]))
      if (file.endsWith('.log')) files.push(path.join(logDir, folder, file));
  }
  return files;
}

export async function snapshotSegments(logDir: string, topics: Iterable<string>): Promise<SegmentSnapshot> {
  const snapshot: SegmentSnapshot = new Map();
  for (const file of await segmentFiles(logDir, new Set(topics))) snapshot.set(file, (await stat(file)).size);
  return snapshot;
}

/** Per topic, what was appended since `before` (new segment files are read from their start). */
export async function tallySince(
  logDir: string,
  topics: Iterable<string>,
  before: SegmentSnapshot,
): Promise<Map<string, WriteTally>> {
  const wanted = new Set(topics);
  const tallies = new Map<string, WriteTally>();
  for (const topic of wanted) tallies.set(topic, emptyTally());
  for (const file of await segmentFiles(logDir, wanted)) {
    const topic = topicOfFolder(path.basename(path.dirname(file)))!;
    const from = before.get(file) ?? 0;
    const handle = await open(file, 'r');
    try {
      const size = (await handle.stat()).size;
      if (size <= from) continue;
      const data = Buffer.alloc(size - from);
      await handle.read(data, 0, data.length, from);
      tallyBatches(data, tallies.get(topic));
    } finally {
      await handle.close();
    }
  }
  return tallies;
}
