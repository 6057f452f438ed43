// Restores task stores from their changelog topics: from the checkpoint stored inside each store
// (atomically with its data) up to the changelog's last stable offset, in batches, read_committed.
import type { Consumer } from '@platformatic/kafka';
import type { Logger } from 'pino';
import type { ChangelogEntry } from '../stores/types.ts';
import type { ChangelogCheck } from './record-auth.ts';
import {
  type FetchedRecord,
  type FetchPartitionError,
  type Fetcher,
  isOutOfRange,
  type PartitionFetch,
  tpKey,
} from '../kafka/fetcher.ts';
import type { StreamTask } from './task.ts';

export interface RestoreTarget {
  task: StreamTask;
  storeName: string;
  topic: string;
  partition: number;
  offset: bigint;
  end: bigint;
}

export interface RestoreProgress {
  records: number;
  elapsedMs: number;
}

const EARLIEST = -2n;
const LATEST = -1n;
const READ_COMMITTED = 1;

/** Restores every logged store of `tasks`; returns how many changelog records were applied. */
export async function restoreTasks(
  tasks: StreamTask[],
  changelogTopicOf: (store: string) => string,
  consumer: Consumer,
  fetcher: Fetcher,
  log: Logger,
  onProgress: (records: number) => void = () => {},
  catchUpMs = 30_000,
  /** Authenticates every record before it is applied (record-mac.ts); throws to stop the restore. */
  check?: ChangelogCheck,
): Promise<RestoreProgress> {
  const started = Date.now();
  const targets = await planRestore(tasks, changelogTopicOf, consumer, log, catchUpMs);
  let records = 0;
  let lastLog = Date.now();
  // Pipelined: the next fetch (from where this batch ends) is in flight while this batch is written, and
  // the stores of one batch are written in parallel (one LevelDB batch each, on libuv's thread pool).
  let inflight: Promise<PartitionFetch[]> | undefined;
  while (targets.some((t) => t.offset < t.end)) {
    let fetched: PartitionFetch[];
    try {
      fetched = await (inflight ?? fetchFrom(fetcher, targets, (t) => t.offset));
    } catch (error) {
      inflight = undefined;
      if (isOutOfRange(error)) {
        await resetOutOfRange(targets, error, consumer, log);
        continue;
      }
      throw error;
    }
    const byKey = new Map(targets.map((t) => [tpKey(t.topic, t.partition), t]));
    const writes: Array<{ target: RestoreTarget; entries: ChangelogEntry[]; next: bigint }> = [];
    for (const part of fetched) {
      const target = byKey.get(tpKey(part.topic, part.partition));
      if (!target || target.offset >= target.end) continue;
      const entries = changelogEntries(part.records, target.end, check && ((r) => check(target.storeName, r)));
      // biome-ignore lint/complexity/useMathMinMax: bigint offsets (Math.min takes numbers)
      const next = part.nextOffset < target.end ? part.nextOffset : target.end;
      if (next > target.offset) writes.push({ target, entries, next });
    }
    const nextOffsets = new Map(writes.map((w) => [w.target, w.next]));
    const after = (t: RestoreTarget) => nextOffsets.get(t) ?? t.offset;
    inflight = targets.some((t) => after(t) < t.end) ? fetchFrom(fetcher, targets, after) : undefined;
    inflight?.catch(() => undefined);
    await Promise.all(
      writes.map(({ target, entries, next }) => target.task.stores.get(target.storeName)!.restoreBatch(entries, next)),
    );
    for (const { target, entries, next } of writes) {
      target.offset = next;
      records += entries.length;
      onProgress(entries.length);
    }
    if (Date.now() - lastLog > 2000) {
      lastLog = Date.now();
      log.info({ records, remaining: remaining(targets) }, 'restoring state stores from changelogs');
    }
  }
  const elapsedMs = Date.now() - started;
  if (targets.length > 0) log.info({ records, elapsedMs, stores: targets.length }, 'state stores restored');
  return { records, elapsedMs };
}

/**
 * The store entries of fetched changelog records below `end` (keyless records carry no entry). `check`
 * authenticates each record first: false leaves it out, a throw stops before anything of the batch is written.
 */
export function changelogEntries(
  records: FetchedRecord[],
  end?: bigint,
  check?: (record: FetchedRecord) => boolean,
): ChangelogEntry[] {
  const entries: ChangelogEntry[] = [];
  for (const r of records) {
    if (!r.key || (end !== undefined && r.offset >= end)) continue;
    if (check && !check(r)) continue;
    entries.push({ key: r.key.toString('utf8'), value: r.value });
  }
  return entries;
}

/** One fetch of every target not restored yet, from `offsetOf` (where the batch being written ends). */
function fetchFrom(
  fetcher: Fetcher,
  targets: RestoreTarget[],
  offsetOf: (t: RestoreTarget) => bigint,
): Promise<PartitionFetch[]> {
  const active = targets.filter((t) => offsetOf(t) < t.end);
  return fetcher.fetch(active.map((t) => ({ topic: t.topic, partition: t.partition, offset: offsetOf(t) })));
}

async function planRestore(
  tasks: StreamTask[],
  changelogTopicOf: (store: string) => string,
  consumer: Consumer,
  log: Logger,
  catchUpMs: number,
): Promise<RestoreTarget[]> {
  const targets: RestoreTarget[] = [];
  for (const task of tasks) {
    for (const [name, store] of task.stores) {
      if (!store.options.logged) continue;
      targets.push({
        task,
        storeName: name,
        topic: changelogTopicOf(name),
        partition: task.partition,
        offset: (await store.checkpoint()) ?? 0n,
        end: 0n,
      });
    }
  }
  if (targets.length === 0) return targets;
  const ends = await stableEnds(consumer, targets, catchUpMs);
  for (const target of targets) {
    target.end = ends.get(tpKey(target.topic, target.partition)) ?? 0n;
    if (target.offset > target.end) {
      // The checkpoint is past the changelog's end: the topic was recreated or truncated. Task corrupted.
      log.warn(
        { task: target.task.id, store: target.storeName, checkpoint: String(target.offset), end: String(target.end) },
        'checkpoint past changelog end; wiping the store and restoring from scratch',
      );
      await target.task.wipeStore(target.storeName);
      target.offset = 0n;
    }
  }
  return targets;
}

/**
 * The last stable offsets, waiting (bounded) while one is below the store's checkpoint. A checkpoint is
 * only written after its transaction committed, but the broker writes the commit markers after EndTxn
 * returns, so for a moment the LSO can lag behind our own committed writes. Only a changelog that stays
 * behind (recreated or truncated topic) means the local state is corrupted.
 */
async function stableEnds(
  consumer: Consumer,
  targets: RestoreTarget[],
  catchUpMs: number,
): Promise<Map<string, bigint>> {
  const deadline = Date.now() + catchUpMs;
  for (;;) {
    const ends = await listOffsets(consumer, targets, LATEST);
    const behind = targets.some((t) => t.offset > (ends.get(tpKey(t.topic, t.partition)) ?? 0n));
    if (!behind || Date.now() > deadline) return ends;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The changelog no longer holds the checkpoint (retention, compaction): wipe the store, go from the earliest offset. */
export async function resetOutOfRange(
  targets: RestoreTarget[],
  error: FetchPartitionError,
  consumer: Consumer,
  log: Logger,
): Promise<void> {
  const target = targets.find((t) => t.topic === error.topic && t.partition === error.partition);
  if (!target) throw error;
  const earliest = (await listOffsets(consumer, [target], EARLIEST)).get(tpKey(target.topic, target.partition)) ?? 0n;
  log.warn(
    { task: target.task.id, store: target.storeName, checkpoint: String(target.offset), earliest: String(earliest) },
    'checkpoint before the changelog start; wiping the store and restoring from the earliest offset',
  );
  await target.task.wipeStore(target.storeName);
  target.offset = earliest;
}

async function listOffsets(
  consumer: Consumer,
  targets: RestoreTarget[],
  timestamp: bigint,
): Promise<Map<string, bigint>> {
  const partitions: Record<string, number[]> = {};
  for (const t of targets) (partitions[t.topic] ??= []).push(t.partition);
  const offsets = await consumer.listOffsets({
    topics: Object.keys(partitions),
    partitions,
    timestamp,
    isolationLevel: READ_COMMITTED,
  });
  const out = new Map<string, bigint>();
  for (const [topic, list] of offsets) list.forEach((offset, partition) => out.set(tpKey(topic, partition), offset));
  return out;
}

function remaining(targets: RestoreTarget[]): string {
  let sum = 0n;
  for (const t of targets) sum += t.end > t.offset ? t.end - t.offset : 0n;
  return String(sum);
}
