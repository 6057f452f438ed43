// Restores task stores from their changelog topics: from the checkpoint stored inside each store
// (atomically with its data) up to the changelog's last stable offset, in batches, read_committed. What to
// restore (the targets: checkpoints and ends) is planned by the StateManager (state-manager.ts).
import { type Consumer, ListOffsetTimestamps } from '@platformatic/kafka';
import type { Logger } from 'pino';
import type { ChangelogEntry } from '../stores/types.ts';
import { TaskCorruptedError } from './errors.ts';
import type { ChangelogCheck, ChangelogVerdict } from './record-auth.ts';
import {
  type FetchedRecord,
  type FetchPartitionError,
  type Fetcher,
  isOutOfRange,
  type PartitionFetch,
  tpKey,
} from '../kafka/fetcher.ts';
import { listOffsets } from './list-offsets.ts';
import type { StreamTask } from './task.ts';

export interface RestoreTarget {
  task: StreamTask;
  storeName: string;
  topic: string;
  partition: number;
  offset: bigint;
  end: bigint;
}

/**
 * One target per logged store of `task` (standby and active restore alike): from the store's checkpoint
 * (0 when it has none) of its changelog; `end` starts at the checkpoint, for the caller to move.
 */
export async function checkpointTargets(
  task: StreamTask,
  partition: number,
  changelogTopicOf: (store: string) => string,
): Promise<RestoreTarget[]> {
  const targets: RestoreTarget[] = [];
  for (const [name, store] of task.stores) {
    if (!store.options.logged) continue;
    const offset = (await store.checkpoint()) ?? 0n;
    targets.push({ task, storeName: name, topic: changelogTopicOf(name), partition, offset, end: offset });
  }
  return targets;
}

export interface RestoreProgress {
  records: number;
  elapsedMs: number;
}

/**
 * Applies the changelog records of every target, from its offset up to its end; returns how many were
 * applied (each batch is also reported to `onProgress`). A checkpoint the changelog no longer holds
 * (offset out of range) throws TaskCorruptedError; a target that applied nothing yet moves to the log start.
 */
export async function restoreTargets(
  targets: RestoreTarget[],
  consumer: Consumer,
  fetcher: Fetcher,
  log: Logger,
  onProgress: (records: number) => void = () => {},
  /** Authenticates every record before it is applied (record-auth.ts); throws to stop the restore. */
  check?: ChangelogCheck,
): Promise<RestoreProgress> {
  const started = Date.now();
  let records = 0;
  let lastLog = Date.now();
  // Pipelined in three stages: while the stores write one batch (one LevelDB batch each, in parallel, on
  // libuv's thread pool), the next batch is fetched, then checked (MACs) on this thread; a store takes
  // its next batch only once its previous one is written. `position` is where each target's next fetch
  // starts: after the batches handed to its store; `target.offset` moves once a batch is written.
  const position = new Map(targets.map((t) => [t, t.offset]));
  const positionOf = (t: RestoreTarget) => position.get(t) ?? t.offset;
  let inflight: Promise<PartitionFetch[]> | undefined;
  let writing: Promise<void> | undefined;
  while (targets.some((t) => positionOf(t) < t.end)) {
    let fetched: PartitionFetch[];
    try {
      fetched = await (inflight ?? fetchFrom(fetcher, targets, positionOf));
    } catch (error) {
      inflight = undefined;
      await writing; // a failed write is the first error to report
      writing = undefined;
      if (isOutOfRange(error)) {
        await startFromLogStart(targets, error, consumer);
        for (const t of targets) position.set(t, t.offset);
        continue;
      }
      throw error;
    }
    const byKey = new Map(targets.map((t) => [tpKey(t.topic, t.partition), t]));
    const writes: Array<{ target: RestoreTarget; batch: ChangelogBatch; next: bigint }> = [];
    for (const part of fetched) {
      const target = byKey.get(tpKey(part.topic, part.partition));
      if (!target || positionOf(target) >= target.end) continue;
      const batch = changelogEntries(part.records, target.end, check && ((r) => check(target.storeName, r)));
      // biome-ignore lint/complexity/useMathMinMax: bigint offsets (Math.min takes numbers)
      const next = part.nextOffset < target.end ? part.nextOffset : target.end;
      if (next > positionOf(target)) writes.push({ target, batch, next });
    }
    for (const w of writes) position.set(w.target, w.next);
    inflight = targets.some((t) => positionOf(t) < t.end) ? fetchFrom(fetcher, targets, positionOf) : undefined;
    inflight?.catch(() => undefined);
    await writing;
    writing = Promise.all(
      writes.map(({ target, batch, next }) =>
        target.task.stores.get(target.storeName)!.restoreBatch(batch.entries, next, batch.authenticated),
      ),
    ).then(() => {
      for (const { target, batch, next } of writes) {
        target.offset = next;
        records += batch.entries.length;
        onProgress(batch.entries.length);
      }
    });
    writing.catch(() => undefined); // awaited above or below; this only marks it handled meanwhile
    if (Date.now() - lastLog > 2000) {
      lastLog = Date.now();
      log.info({ records, remaining: remaining(targets) }, 'restoring state stores from changelogs');
    }
  }
  await writing;
  const elapsedMs = Date.now() - started;
  if (targets.length > 0) log.info({ records, elapsedMs, stores: targets.length }, 'state stores restored');
  return { records, elapsedMs };
}

/** Changelog entries to restore, and whether the MAC of every one of them verified. */
export interface ChangelogBatch {
  entries: ChangelogEntry[];
  /**
   * True when every entry's record verified under the cluster secret: its bytes are exactly what this
   * application's engine wrote, so the store may check their format cheaply (Serde.check) instead of
   * deserializing each one. False without a check, or when one record was accepted unsigned.
   */
  authenticated: boolean;
}

/**
 * The store entries of fetched changelog records below `end` (keyless records carry no entry). `check`
 * authenticates each record first: 'skip' leaves it out, a throw stops before anything of the batch is written.
 */
export function changelogEntries(
  records: FetchedRecord[],
  end?: bigint,
  check?: (record: FetchedRecord) => ChangelogVerdict,
): ChangelogBatch {
  const entries: ChangelogEntry[] = [];
  let authenticated = check !== undefined;
  for (const r of records) {
    if (!r.key || (end !== undefined && r.offset >= end)) continue;
    if (check) {
      const verdict = check(r);
      if (verdict === 'skip') continue;
      if (verdict !== 'authenticated') authenticated = false;
    }
    entries.push({ key: r.key.toString('utf8'), value: r.value });
  }
  return { entries, authenticated };
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

/**
 * The changelog does not hold a target's position any more (retention, compaction, DeleteRecords). A
 * target that applied nothing yet (a new or wiped store) starts at the log start; one whose store holds
 * changelog data is corrupted: the task manager wipes it and restores it from scratch.
 */
async function startFromLogStart(targets: RestoreTarget[], error: FetchPartitionError, consumer: Consumer) {
  const target = targets.find((t) => t.topic === error.topic && t.partition === error.partition);
  if (!target) throw error;
  if (target.offset > 0n)
    throw new TaskCorruptedError(
      new Map([[target.partition, [target.storeName]]]),
      `${target.task.id}: checkpoint ${target.offset} of store ${target.storeName} is before the start of its changelog`,
      { cause: error },
    );
  target.offset = await logStart(consumer, target);
}

/** The standbys' way (a standby is not the task manager's): wipe the store and go on from the log start. */
export async function resetOutOfRange(
  targets: RestoreTarget[],
  error: FetchPartitionError,
  consumer: Consumer,
  log: Logger,
): Promise<void> {
  const target = targets.find((t) => t.topic === error.topic && t.partition === error.partition);
  if (!target) throw error;
  const earliest = await logStart(consumer, target);
  log.warn(
    { task: target.task.id, store: target.storeName, checkpoint: String(target.offset), earliest: String(earliest) },
    'checkpoint before the changelog start; wiping the store and restoring from the earliest offset',
  );
  await target.task.wipeStore(target.storeName);
  target.offset = earliest;
}

async function logStart(consumer: Consumer, target: RestoreTarget): Promise<bigint> {
  const starts = await listOffsets(consumer, { [target.topic]: [target.partition] }, ListOffsetTimestamps.EARLIEST);
  return starts.get(tpKey(target.topic, target.partition)) ?? 0n;
}

function remaining(targets: RestoreTarget[]): string {
  let sum = 0n;
  for (const t of targets) sum += t.end > t.offset ? t.end - t.offset : 0n;
  return String(sum);
}
