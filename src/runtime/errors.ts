// Errors grouped by what the caller must do, as in Kafka Streams:
// task migrated (drop the task and rejoin), task corrupted (wipe its state and restore), fatal (stop).
import { FatalStreamsError, kafkaErrorIds, StreamsError } from '../kafka/errors.ts';

// The base classes and the fencing test live in kafka/errors.ts, so the Kafka layer can stop on them too.
export { FatalStreamsError, isFencedError, StreamsError } from '../kafka/errors.ts';

/** Another member owns the task now (rebalance, illegal generation): abort, close dirty, rejoin. */
export class TaskMigratedError extends StreamsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('task_migrated', message, options);
    this.name = 'TaskMigratedError';
  }
}

/**
 * Tasks' local state cannot be trusted (a checkpoint past the changelog end: the topic was recreated; a
 * checkpoint before its start: truncated): the task manager wipes the named stores and restores them
 * from scratch. `stores` names the corrupted stores of each partition (task).
 */
export class TaskCorruptedError extends StreamsError {
  readonly stores: ReadonlyMap<number, readonly string[]>;
  constructor(stores: ReadonlyMap<number, readonly string[]>, message: string, options?: { cause?: unknown }) {
    super('task_corrupted', message, options);
    this.name = 'TaskCorruptedError';
    this.stores = stores;
  }

  /** The corrupted tasks' partitions. */
  get partitions(): number[] {
    return [...this.stores.keys()];
  }
}

export class IllegalTaskStateError extends StreamsError {
  constructor(task: string, state: string, operation: string) {
    super('illegal_task_state', `task ${task}: cannot ${operation} in state ${state}`);
    this.name = 'IllegalTaskStateError';
  }
}

const MIGRATED = new Set([
  'ILLEGAL_GENERATION',
  'UNKNOWN_MEMBER_ID',
  'REBALANCE_IN_PROGRESS',
  'FENCED_INSTANCE_ID',
  'STALE_MEMBER_EPOCH',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
]);

export function isMigratedError(error: unknown): boolean {
  for (const id of kafkaErrorIds(error)) if (MIGRATED.has(id)) return true;
  return false;
}

/**
 * Waits for every one of `operations`, then rethrows the first failure (in their order): none is still
 * running (writing a store, loading from it) when the caller's failure path closes what they use.
 */
export async function settleAll(operations: Iterable<Promise<unknown>>): Promise<void> {
  const settled = await Promise.allSettled(operations);
  const failed = settled.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
}

/** The fatal error of a zombie: a newer instance with our transactional id took over. */
export function fenced(cause: unknown): FatalStreamsError {
  return new FatalStreamsError(
    'producer_fenced',
    'this instance was fenced by a newer one with the same transactional id',
    { cause },
  );
}
