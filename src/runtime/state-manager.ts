// The StateManager (Kafka Streams' ProcessorStateManager, for all of this engine's tasks): the source of
// truth for where each store stands against its changelog. It names the changelogs, reads the
// checkpoints (kept inside each store, atomically with its data), plans a restore (checkpoint → last
// stable offset of each changelog) and runs it. A checkpoint the changelog cannot hold (the topic was
// recreated or truncated) is reported as TaskCorruptedError: the task manager wipes and restores.
import { type Consumer, ListOffsetTimestamps } from '@platformatic/kafka';
import type { Logger } from 'pino';
import { changelogTopic } from '../topology/changelog.ts';
import type { Topology } from '../topology/topology.ts';
import { TaskCorruptedError } from './errors.ts';
import { type Fetcher, tpKey } from '../kafka/fetcher.ts';
import { listOffsets } from './list-offsets.ts';
import type { ChangelogCheck } from './record-auth.ts';
import { checkpointTargets, type RestoreProgress, type RestoreTarget, restoreTargets } from './restore.ts';
import type { StreamTask } from './task.ts';

export interface StateManagerOptions {
  applicationId: string;
  topology: Topology;
  consumer: Consumer;
  fetcher: Fetcher;
  log: Logger;
  /** How long a plan waits for a changelog's last stable offset to reach a store's checkpoint (ms). */
  catchUpMs: number;
  /** Authenticates every changelog record before it is applied (record-auth.ts). */
  check?: ChangelogCheck;
}

export class StateManager {
  readonly #options: StateManagerOptions;

  constructor(options: StateManagerOptions) {
    this.#options = options;
  }

  changelogTopic(store: string): string {
    return changelogTopic(this.#options.applicationId, store);
  }

  /** The names of the topology's logged stores (those with a changelog). */
  loggedStores(): string[] {
    return this.#options.topology
      .stores()
      .filter((store) => store.logged)
      .map((store) => store.name);
  }

  /** Restores every logged store of `tasks` from its checkpoint; throws TaskCorruptedError (nothing restored) first. */
  async restore(tasks: StreamTask[], onProgress?: (records: number) => void): Promise<RestoreProgress> {
    const { consumer, fetcher, log, check } = this.#options;
    const targets = await this.planRestore(tasks);
    return restoreTargets(targets, consumer, fetcher, log, onProgress, check);
  }

  /** One target per logged store of each task: from its checkpoint to its changelog's last stable offset. */
  async planRestore(tasks: StreamTask[]): Promise<RestoreTarget[]> {
    const targets: RestoreTarget[] = [];
    for (const task of tasks) {
      targets.push(...(await checkpointTargets(task, task.partition, (store) => this.changelogTopic(store))));
    }
    if (targets.length === 0) return targets;
    const ends = await this.#stableEnds(targets);
    const corrupted = new Map<number, string[]>();
    for (const target of targets) {
      target.end = ends.get(tpKey(target.topic, target.partition)) ?? 0n;
      // The checkpoint is past the changelog's end: the topic was recreated or truncated.
      if (target.offset > target.end) {
        this.#options.log.warn(
          { task: target.task.id, store: target.storeName, checkpoint: String(target.offset), end: String(target.end) },
          'checkpoint past changelog end: task corrupted',
        );
        let stores = corrupted.get(target.partition);
        if (!stores) corrupted.set(target.partition, (stores = []));
        stores.push(target.storeName);
      }
    }
    if (corrupted.size > 0)
      throw new TaskCorruptedError(
        corrupted,
        `checkpoint past the changelog end for partitions ${[...corrupted.keys()]}`,
      );
    return targets;
  }

  /** The changelogs' last stable offsets of one partition, per store (for the state cleaner's recovery lag). */
  async changelogEndOffsets(partition: number): Promise<Map<string, bigint>> {
    const stores = this.loggedStores();
    const ends = await listOffsets(
      this.#options.consumer,
      Object.fromEntries(stores.map((store) => [this.changelogTopic(store), [partition]])),
      ListOffsetTimestamps.LATEST,
    );
    return new Map(stores.map((store) => [store, ends.get(tpKey(this.changelogTopic(store), partition)) ?? 0n]));
  }

  /**
   * The last stable offsets, waiting (bounded) while one is below the store's checkpoint. A checkpoint is
   * only written after its transaction committed, but the broker writes the commit markers after EndTxn
   * returns, so for a moment the LSO can lag behind our own committed writes. Only a changelog that stays
   * behind (recreated or truncated topic) means the local state is corrupted.
   */
  async #stableEnds(targets: RestoreTarget[]): Promise<Map<string, bigint>> {
    const partitions: Record<string, number[]> = {};
    for (const t of targets) (partitions[t.topic] ??= []).push(t.partition);
    const deadline = Date.now() + this.#options.catchUpMs;
    for (;;) {
      const ends = await listOffsets(this.#options.consumer, partitions, ListOffsetTimestamps.LATEST);
      const behind = targets.some((t) => t.offset > (ends.get(tpKey(t.topic, t.partition)) ?? 0n));
      if (!behind || Date.now() > deadline) return ends;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Names of the task's stores that hold at least one entry (after restore: local data or changelog data). */
export async function storesWithData(task: StreamTask): Promise<string[]> {
  const names: string[] = [];
  for (const [name, store] of task.stores) {
    try {
      for await (const _entry of store.range({ limit: 1 })) {
        names.push(name);
        break;
      }
    } catch {
      // A store that cannot even be read holds something: fail closed.
      names.push(name);
    }
  }
  return names;
}
