// StateDirectoryCleaner: deletes task state folders this instance no longer needs, as Kafka Streams'
// state.cleanup.delay.ms does. Layout: <stateDir>/<appId>/<instanceId>/<partition>/<store>/ (LevelDB).
// A partition folder of this instance is deleted once it has been neither active nor standby here for
// longer than the delay; a folder of another INSTANCE_ID (an old name of this host, or a sibling on a
// shared disk) only when none of its files changed for longer than the delay AND none of its LevelDB
// databases is locked (a running instance holds the LOCK of every store it has open). With `recovery`,
// an unassigned folder too far behind its changelogs (acceptable.recovery.lag) is wiped at once.
// Runs between loop iterations of the engine, never concurrently with a rebalance opening stores.
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { LevelTaskStore } from '../stores/level-store.ts';
import { settlesWithin } from '../stores/segment-layout.ts';
import { bufferSerde } from '../stores/serdes.ts';
import { localStateLagRecords, warmLocalPartitions } from './assignor.ts';

export interface StateCleanerOptions {
  /** <stateDir>/<appId>. */
  appDir: string;
  instanceId: string;
  /** How long a folder stays after it was last in use here (default 10 min). */
  cleanupDelayMs: number;
  clock?: () => number;
  /**
   * Like Kafka Streams' acceptable.recovery.lag: an unassigned folder whose stores are more than
   * `acceptableLagRecords` changelog records behind (summed over its stores) is wiped, so it is
   * neither advertised to the assignor as warm nor replayed from a checkpoint far in the past.
   */
  recovery?: {
    acceptableLagRecords: number;
    /**
     * measureLocal waits for the changelog ends at most this long in all (ms; 0 = not at all): a bound
     * for a broker outage, not a delay, since an answering broker ends the wait at once. Default 5,000.
     */
    measureTimeoutMs?: number;
    /** The changelog end offset of each store (name → offset) of a partition. */
    changelogEndOffsets(partition: number): Promise<Map<string, bigint>>;
  };
}

export interface CleanupResult {
  /** Folders deleted, relative to appDir ("<instance>/<partition>" or "<instance>"). */
  deleted: string[];
}

const PARTITION_PATTERN = /^\d+$/;
/** measureLocal's bound on waiting for changelog ends when the options name none (ms). */
const DEFAULT_MEASURE_TIMEOUT_MS = 5_000;

export class StateDirectoryCleaner {
  readonly #options: StateCleanerOptions;
  readonly #clock: () => number;
  /** Partition → when it was last seen in use here (in memory; a folder found at start counts from its newest file). */
  readonly #lastInUseMs = new Map<number, number>();
  /** Partition → records its folder was behind its changelogs when last measured (unassigned folders only). */
  readonly #lagRecords = new Map<number, bigint>();

  constructor(options: StateCleanerOptions) {
    if (!Number.isSafeInteger(options.cleanupDelayMs) || options.cleanupDelayMs < 0)
      throw new RangeError('state cleanup delay must be a non-negative integer of ms');
    const timeoutMs = options.recovery?.measureTimeoutMs;
    if (timeoutMs !== undefined && (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0))
      throw new RangeError(`recovery lag measure timeout must be a non-negative integer of ms, got ${timeoutMs}`);
    this.#options = options;
    this.#clock = options.clock ?? Date.now;
  }

  /** Partitions whose folder may be deleted soon: not a warm copy worth advertising to the assignor. */
  isStale(partition: number, newestFileMs: number): boolean {
    const last = Math.max(this.#lastInUseMs.get(partition) ?? Number.NEGATIVE_INFINITY, newestFileMs);
    return this.#clock() - last >= this.#options.cleanupDelayMs;
  }

  async #farBehind(partition: number, dir: string): Promise<boolean> {
    const recovery = this.#options.recovery;
    if (recovery === undefined) return false;
    const [ends, checkpoints] = await Promise.all([recovery.changelogEndOffsets(partition), folderCheckpoints(dir)]);
    const lag = localStateLagRecords(checkpoints, ends);
    this.#lagRecords.set(partition, lag);
    return lag > BigInt(recovery.acceptableLagRecords);
  }

  /**
   * Measures how far behind its changelogs each folder of this instance is, except those in use here
   * (their stores are open; they are advertised as active or standby anyway). Run before joining the
   * group, so that member info advertises only warm folders (warmLocal). The changelog ends are
   * waited for at most `recovery.measureTimeoutMs` in all (a broker outage must not hold the join); a
   * folder not measured keeps its last measure. Its LevelDB opens are awaited: none outlives the call.
   */
  async measureLocal(inUse: ReadonlySet<number>): Promise<void> {
    const recovery = this.#options.recovery;
    if (recovery === undefined) return;
    const timeoutMs = recovery.measureTimeoutMs ?? DEFAULT_MEASURE_TIMEOUT_MS;
    const deadlineMs = Date.now() + timeoutMs;
    const instanceDir = path.join(this.#options.appDir, this.#options.instanceId);
    for (const name of (await listDirs(instanceDir)).filter((n) => PARTITION_PATTERN.test(n))) {
      const partition = Number(name);
      if (inUse.has(partition)) continue;
      const ends = recovery.changelogEndOffsets(partition);
      if (!(await settlesWithin(ends, deadlineMs - Date.now()))) return;
      const known = await ends.catch(() => undefined);
      if (known === undefined) continue;
      this.#lagRecords.set(
        partition,
        localStateLagRecords(await folderCheckpoints(path.join(instanceDir, name)), known),
      );
    }
  }

  /** The local folders worth advertising to the assignor: those not measured too far behind (assignor.ts warmLocalPartitions). */
  warmLocal(local: readonly number[]): number[] {
    const acceptable = this.#options.recovery?.acceptableLagRecords;
    return acceptable === undefined ? [...local] : warmLocalPartitions(local, this.#lagRecords, acceptable);
  }

  /** Deletes what is unused for longer than the delay; `inUse` = the partitions active or standby here now. */
  async sweep(inUse: ReadonlySet<number>): Promise<CleanupResult> {
    const now = this.#clock();
    for (const partition of inUse) {
      this.#lastInUseMs.set(partition, now);
      // In use here: up to date, and measured again once it is not.
      this.#lagRecords.delete(partition);
    }
    const deleted: string[] = [];
    for (const instance of await listDirs(this.#options.appDir)) {
      const instanceDir = path.join(this.#options.appDir, instance);
      if (instance === this.#options.instanceId) {
        for (const name of (await listDirs(instanceDir)).filter((n) => PARTITION_PATTERN.test(n))) {
          const partition = Number(name);
          if (inUse.has(partition)) continue;
          const dir = path.join(instanceDir, name);
          if (!this.isStale(partition, await newestFileMs(dir)) && !(await this.#farBehind(partition, dir))) continue;
          await rm(dir, { recursive: true, force: true });
          this.#lastInUseMs.delete(partition);
          this.#lagRecords.delete(partition);
          deleted.push(`${instance}/${name}`);
        }
      } else if (
        now - (await newestFileMs(instanceDir)) >= this.#options.cleanupDelayMs &&
        !(await anyStoreLocked(instanceDir))
      ) {
        await rm(instanceDir, { recursive: true, force: true });
        deleted.push(instance);
      }
    }
    return { deleted };
  }
}

/** The checkpoint (next changelog offset) of each store folder under a partition folder; null where none. */
export async function folderCheckpoints(partitionDir: string): Promise<Map<string, bigint | null>> {
  const checkpoints = new Map<string, bigint | null>();
  for (const store of await listDirs(partitionDir)) {
    const store_ = await LevelTaskStore.open(path.join(partitionDir, store), {
      name: store,
      valueSerde: bufferSerde,
      logged: true,
      cacheEntriesMax: 0,
    }).catch(() => undefined);
    if (store_ === undefined) {
      checkpoints.set(store, null);
      continue;
    }
    try {
      checkpoints.set(store, store_.position());
    } finally {
      await store_.close();
    }
  }
  return checkpoints;
}

async function listDirs(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
}

/** The newest modification time of any file under `dir` (depth-bounded: partition/store/files). */
export async function newestFileMs(dir: string, depthMax = 3): Promise<number> {
  let newest = Number.NEGATIVE_INFINITY;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return newest;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (depthMax > 0) newest = Math.max(newest, await newestFileMs(full, depthMax - 1));
    } else {
      newest = Math.max(newest, (await stat(full).catch(() => ({ mtimeMs: Number.NEGATIVE_INFINITY }))).mtimeMs);
    }
  }
  return newest;
}

/** Whether a running process holds any LevelDB database under `instanceDir` (<partition>/<store>). */
async function anyStoreLocked(instanceDir: string): Promise<boolean> {
  for (const partition of await listDirs(instanceDir)) {
    for (const store of await listDirs(path.join(instanceDir, partition))) {
      const db = new ClassicLevel(path.join(instanceDir, partition, store), { createIfMissing: false });
      try {
        await db.open();
      } catch (error) {
        // LEVEL_LOCKED: another process has it open. Anything else (not a database): not in use.
        if (
          (error as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED' ||
          (error as { code?: string }).code === 'LEVEL_LOCKED'
        )
          return true;
        continue;
      }
      await db.close();
    }
  }
  return false;
}
