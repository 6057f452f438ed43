// Where the stream thread's next fetch starts for each running task's source partitions, and the last
// stable offsets the fetches reported (for lag). The next fetch is started before a batch is processed, so
// it starts where the previous fetch ended, not at the task's position; an epoch, bumped whenever the
// tasks change, says when those ends no longer hold.
import type { PartitionLag } from '../streams/status.ts';
import { type FetchPosition, type FetchRound, tpKey } from '../kafka/fetcher.ts';
import type { StreamTask } from './task.ts';

export class FetchPositions {
  #epoch = 0;
  #nextEpoch = 0;
  readonly #next = new Map<string, bigint>();
  /** Last stable offset per source partition, as the last fetch reported it. */
  readonly #stableEnds = new Map<string, bigint>();

  /** The tasks changed: a fetch started before is for positions that no longer hold. */
  get epoch(): number {
    return this.#epoch;
  }

  invalidate(): void {
    this.#epoch++;
  }

  /** The fetch positions of the running tasks that are not stopped. */
  of(tasks: Iterable<StreamTask>, isStopped: (partition: number) => boolean): FetchPosition[] {
    const out = [];
    for (const task of tasks) {
      if (task.state !== 'RUNNING' || isStopped(task.partition)) continue;
      for (const [topic, offset] of task.positions) {
        const next = this.#next.get(tpKey(topic, task.partition));
        out.push({
          topic,
          partition: task.partition,
          offset: next !== undefined && next > offset && this.#nextEpoch === this.#epoch ? next : offset,
        });
      }
    }
    if (this.#nextEpoch !== this.#epoch) {
      this.#next.clear();
      this.#nextEpoch = this.#epoch;
    }
    return out;
  }

  advance(fetched: FetchRound['fetched']): void {
    for (const part of fetched) {
      const key = tpKey(part.topic, part.partition);
      this.#next.set(key, part.nextOffset);
      if (part.lastStableOffset >= 0n) this.#stableEnds.set(key, part.lastStableOffset);
    }
  }

  /** Consumer lag of every running task's source partitions, as of the last fetch of each. */
  lag(tasks: Iterable<StreamTask>): PartitionLag[] {
    const out: PartitionLag[] = [];
    for (const task of tasks) {
      if (task.state !== 'RUNNING') continue;
      for (const [topic, position] of task.positions) {
        const end = this.#stableEnds.get(tpKey(topic, task.partition));
        if (end !== undefined)
          out.push({ topic, partition: task.partition, records: Number(end > position ? end - position : 0n) });
      }
    }
    return out;
  }
}
