// Standby tasks (STANDBY_REPLICAS): warm copies of partitions another instance runs. A standby opens the
// partition's stores in this instance's state folder (the very folder an active task of that partition
// would use) and tails their changelogs, read_committed, writing every batch with its next offset as the
// checkpoint, atomically, as a restore does. When the partition fails over to this instance, the active
// task opens the same stores and restores only the changelog tail the standby had not applied yet.
//
// A standby never processes input and never writes to Kafka; it is not fenced by the group generation and
// lives across rebalances as long as the assignment keeps it. Its stores serve stale reads on request
// (GET /v1/accounts/:id?allowStale=true), with the lag: records the changelogs hold beyond what it applied.
import type { Consumer } from '@platformatic/kafka';
import type { Logger } from 'pino';
import { backoffDelayMs, BROKER_BACKOFF, type BrokerOutage, isBrokerUnavailable } from '../kafka/retry.ts';
import { type Fetcher, isOutOfRange, tpKey } from '../kafka/fetcher.ts';
import type { ChangelogCheck } from './record-auth.ts';
import { changelogEntries, checkpointTargets, type RestoreTarget, resetOutOfRange } from './restore.ts';
import type { StreamTask } from './task.ts';

export interface StandbyTasksOptions {
  consumer: Consumer;
  fetcher: Fetcher;
  log: Logger;
  changelogTopicOf(store: string): string;
  /** A task for the partition's state folder; only its stores are used. */
  createTask(partition: number): StreamTask;
  /** Authenticates every changelog record before it is applied (record-auth.ts); a throw drops the standby. */
  check?: ChangelogCheck;
  /** Where a broker outage seen by the standby fetches is reported (logged at a low rate, /readyz, metrics). */
  outage?: BrokerOutage;
}

interface Standby {
  task: StreamTask;
  /** One per logged store; `end` is the changelog's last stable offset as last fetched. */
  targets: RestoreTarget[];
  /** Changelog records applied since the standby opened. */
  applied: number;
}

/** A standby's stores for a stale read, and how far behind the changelogs they are. */
export interface StandbyView {
  task: StreamTask;
  /** Changelog records beyond what the standby applied (per the last fetch): 0 when caught up. */
  lagRecords: bigint;
}

export class StandbyTasks {
  readonly #options: StandbyTasksOptions;
  readonly #standbys = new Map<number, Standby>();
  #loop: Promise<void> | undefined;
  #halting = false;

  constructor(options: StandbyTasksOptions) {
    this.#options = options;
  }

  partitions(): number[] {
    return [...this.#standbys.keys()].sort((a, b) => a - b);
  }

  view(partition: number): StandbyView | undefined {
    // Still readable while halting: the stores stay open until the standby is closed.
    const standby = this.#standbys.get(partition);
    if (!standby) return undefined;
    let lagRecords = 0n;
    for (const t of standby.targets) if (t.end > t.offset) lagRecords += t.end - t.offset;
    return { task: standby.task, lagRecords };
  }

  /** Changelog records not applied yet, over every standby (a metric: a number is precise enough). */
  lagRecords(): number {
    let lag = 0n;
    for (const partition of this.#standbys.keys()) lag += this.view(partition)?.lagRecords ?? 0n;
    return Number(lag);
  }

  /** Keeps standbys for exactly `partitions`: closes the others, opens the new ones, resumes tailing. */
  async assign(partitions: number[]): Promise<void> {
    await this.#halt();
    const wanted = new Set(partitions);
    for (const [partition, standby] of this.#standbys) {
      if (wanted.has(partition)) continue;
      this.#standbys.delete(partition);
      await standby.task
        .close()
        .catch((error: unknown) => this.#options.log.warn({ err: error, partition }, 'closing standby task failed'));
    }
    for (const partition of wanted) {
      if (this.#standbys.has(partition)) continue;
      const standby = await this.#open(partition).catch((error: unknown) => {
        this.#options.log.warn({ err: error, partition }, 'opening standby task failed; no standby for this partition');
        return undefined;
      });
      if (standby) this.#standbys.set(partition, standby);
    }
    if (this.#standbys.size > 0) {
      this.#options.log.info({ partitions: this.partitions() }, 'standby tasks tailing changelogs');
      this.#loop = this.#run();
    }
  }

  async close(): Promise<void> {
    await this.assign([]);
  }

  async #open(partition: number): Promise<Standby> {
    const task = this.#options.createTask(partition);
    await task.openStores();
    let targets: RestoreTarget[];
    try {
      targets = await checkpointTargets(task, partition, (store) => this.#options.changelogTopicOf(store));
    } catch (error) {
      await task.close().catch(() => undefined);
      throw error;
    }
    return { task, targets, applied: 0 };
  }

  /** Stops tailing after the current round: no store write is in progress when it resolves. */
  async #halt(): Promise<void> {
    this.#halting = true;
    await this.#loop;
    this.#loop = undefined;
    this.#halting = false;
  }

  async #run(): Promise<void> {
    const { fetcher, consumer, log } = this.#options;
    let failures = 0;
    while (!this.#halting && this.#standbys.size > 0) {
      const targets = [...this.#standbys.values()].flatMap((s) => s.targets);
      let fetched;
      try {
        fetched = await fetcher.fetch(
          targets.map((t) => ({ topic: t.topic, partition: t.partition, offset: t.offset })),
        );
      } catch (error) {
        if (this.#halting) return;
        if (isOutOfRange(error)) {
          await resetOutOfRange(targets, error, consumer, log).catch((e: unknown) => this.#drop(error.partition, e));
          continue;
        }
        // Retried for as long as it takes (a standby never gives up on the broker), with a bounded pause.
        const retryInMs = backoffDelayMs(BROKER_BACKOFF, failures++);
        if (this.#options.outage && isBrokerUnavailable(error))
          this.#options.outage.failed('standby fetch', error, retryInMs);
        else log.warn({ err: error, retryInMs }, 'standby fetch failed; retrying');
        await sleep(retryInMs);
        continue;
      }
      failures = 0;
      this.#options.outage?.recovered();
      const byKey = new Map(targets.map((t) => [tpKey(t.topic, t.partition), t]));
      for (const part of fetched) {
        const target = byKey.get(tpKey(part.topic, part.partition));
        if (!target || !this.#standbys.has(target.partition)) continue;
        if (part.lastStableOffset >= 0n) target.end = part.lastStableOffset;
        if (part.nextOffset <= target.offset) continue;
        let restored: number;
        try {
          const batch = changelogEntries(
            part.records,
            undefined,
            this.#options.check && ((r) => this.#options.check!(target.storeName, r)),
          );
          await target.task.stores
            .get(target.storeName)!
            .restoreBatch(batch.entries, part.nextOffset, batch.authenticated);
          restored = batch.entries.length;
        } catch (error) {
          await this.#drop(target.partition, error);
          continue;
        }
        target.offset = part.nextOffset;
        if (target.end < target.offset) target.end = target.offset;
        this.#standbys.get(target.partition)!.applied += restored;
      }
    }
  }

  /** A standby whose store failed is dropped (the partition then restores in full if it fails over here). */
  async #drop(partition: number, error: unknown): Promise<void> {
    const standby = this.#standbys.get(partition);
    if (!standby) return;
    this.#options.log.error({ err: error, partition }, 'standby task failed; dropping it');
    this.#standbys.delete(partition);
    await standby.task.close().catch(() => undefined);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
