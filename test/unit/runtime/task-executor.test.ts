// The task executor's three-phase commit, step by step: prepare every task, ONE transaction, post-commit
// every task. The producer, the offsets step and the tasks are recording stand-ins (the same commit on the
// real broker is covered by test/integration/engine/exactly-once.test.ts).
import type { Consumer } from '@platformatic/kafka';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { BankstreamProducer } from '../../../src/kafka/producer.ts';
import type { EngineContext } from '../../../src/runtime/engine-options.ts';
import { FatalStreamsError, TaskMigratedError } from '../../../src/runtime/errors.ts';
import type { StreamTask } from '../../../src/runtime/task.ts';
import { type ExecutorTasks, TaskExecutor } from '../../../src/runtime/task-executor.ts';

interface Harness {
  executor: TaskExecutor;
  steps: string[];
  /** What the tasks were asked to do while processing: collect, prefetch (start/end), process. */
  processing: string[];
  tasks: FakeTask[];
  commits: number;
}

interface FakeTask {
  partition: number;
  committedPositions: Map<string, bigint> | undefined;
  state: string;
}

/** Two running tasks, each with one logged store holding two uncommitted entries. */
function harness(
  options: {
    commitFails?: boolean;
    producerIdChanges?: boolean;
    assignmentChanged?: boolean;
    commitWhenCaughtUp?: boolean;
    batchRecordsMax?: number;
    /** Repartition records with this value are refused (dead letters). */
    forged?: string;
    /** Task 1 stops while task 0 processes. */
    task1StopsDuringProcessing?: boolean;
    /** Each prefetch waits a timer's turn (so that overlapping ones show). */
    slowPrefetch?: boolean;
    /** EndTxn answers only once this settles (a transaction held in flight). */
    endTxnGate?: Promise<void>;
  } = {},
) {
  const steps: string[] = [];
  const processing: string[] = [];
  const fakes: FakeTask[] = [];
  const tasks = [0, 1].map((partition) => {
    const fake: FakeTask = { partition, committedPositions: undefined, state: 'RUNNING' };
    fakes.push(fake);
    const store = {
      options: { logged: true },
      commitNeeded: () => true,
      prepareCommit: () => {
        steps.push(`1 prepare ${partition}/s`);
        return [
          { key: `a${partition}`, value: Buffer.from('1') },
          { key: `b${partition}`, value: null },
        ];
      },
      flush: async (checkpoint: bigint | null) => {
        steps.push(`3a flush ${partition}/s at ${checkpoint}`);
      },
    };
    return {
      partition,
      id: `task-${partition}`,
      get state() {
        return fake.state;
      },
      positions: new Map([['in', 10n + BigInt(partition)]]),
      stores: new Map([['s', store]]),
      commitNeeded: () => true,
      punctuate: async () => 0,
      collectKeys: (records: unknown[]) => processing.push(`collect ${partition} ${records.length}`),
      prefetch: async () => {
        processing.push(`prefetch ${partition}`);
        if (options.slowPrefetch) await new Promise((resolve) => setTimeout(resolve, 1));
        processing.push(`prefetched ${partition}`);
      },
      process: async (topic: string, records: unknown[], _next: bigint, prefetched = false) => {
        processing.push(`process ${partition} ${topic} ${records.length}${prefetched ? ' prefetched' : ''}`);
        if (partition === 0 && options.task1StopsDuringProcessing) fakes[1]!.state = 'CLOSED';
        return records.length;
      },
      markCommitted: (positions: Map<string, bigint>) => {
        steps.push(`3b committed ${partition}`);
        fake.committedPositions = new Map(positions);
      },
    } as unknown as StreamTask;
  });
  let producerId = 7n;
  let begun = 0;
  const producer = {
    get producerId() {
      return producerId;
    },
    producerEpoch: 0,
    transaction: undefined,
    beginTransaction: async () => {
      steps.push('2a begin');
      // The first transaction is initProducer's; a newer instance took over before the second.
      if (options.producerIdChanges && ++begun === 2) producerId = 8n;
      return {
        cancel: async () => {},
        send: async ({ messages }: { messages: Array<{ topic: string; partition: number }> }) => {
          steps.push(`2b send ${messages.length}`);
          // The changelog records of each partition got offsets 100.. (base offsets as the broker answers them).
          return { offsets: [0, 1].map((partition) => ({ topic: 'app-s-changelog', partition, offset: 100n })) };
        },
        commit: async () => {
          await options.endTxnGate;
          steps.push('2d commit');
          if (options.commitFails) throw new Error('EndTxn failed');
        },
      };
    },
  } as unknown as BankstreamProducer;
  const executorTasks: ExecutorTasks = {
    assigned: { generationId: 3, partitions: [0, 1], standby: [] },
    active: () => tasks.values(),
    task: (partition) => tasks[partition],
    isStopped: () => false,
    assignmentChanged: () => options.assignmentChanged ?? false,
  };
  const h: Harness = { executor: undefined as unknown as TaskExecutor, steps, processing, tasks: fakes, commits: 0 };
  const ctx = {
    log: pino({ level: 'silent' }),
    internal: {
      sign: (o: unknown) => o,
      changelogHeaders: () => undefined,
      authenticate: (_topic: string, records: Array<{ value?: string }>) => ({
        accepted: records.filter((r) => options.forged === undefined || r.value !== options.forged),
        deadLetters: records
          .filter((r) => options.forged !== undefined && r.value === options.forged)
          .map(() => ({ topic: 'dlq', partition: 0, timestamp: 0, key: null, value: null, headers: {} })),
      }),
    },
    membership: { commitMember: () => ({ memberId: 'member-1', groupInstanceId: 'i0' }) },
    options: {
      batchRecordsMax: options.batchRecordsMax ?? 1000,
      // Far away: a commit in these tests is forced, full or caught up, never the interval's.
      commitIntervalMs: 60_000,
      commitWhenCaughtUp: options.commitWhenCaughtUp ?? true,
      transactionTimeoutMs: 1000,
      onCommit: () => {
        steps.push('3c onCommit');
        h.commits++;
      },
    },
  } as unknown as EngineContext;
  h.executor = new TaskExecutor(ctx, {
    producer,
    consumer: { groupId: 'app', memberId: 'member-1' } as unknown as Consumer,
    tasks: executorTasks,
    changelogTopicOf: (store) => `app-${store}-changelog`,
    partitionCountOf: () => 2,
    onCommitted: () => steps.push('3 onCommitted'),
    fatal: () => undefined,
    sendOffsets: async (_producer, _consumer, offsets, options) => {
      steps.push(
        `2c offsets ${offsets.map((o) => `${o.partition}:${o.offset}`).join(',')} gen ${options?.group?.generationId} as ${options?.group?.memberId}/${options?.group?.groupInstanceId}`,
      );
    },
  });
  return h;
}

describe('TaskExecutor', () => {
  it('should prepare every task, commit ONE transaction, then post-commit every task, in that order', async () => {
    const h = harness();
    await h.executor.initProducer();
    h.steps.length = 0;
    await h.executor.maybeCommit(true);
    expect(h.steps).toEqual([
      '1 prepare 0/s',
      '1 prepare 1/s',
      '2a begin',
      '2b send 4',
      '2c offsets 0:10,1:11 gen 3 as member-1/i0',
      '2d commit',
      // The checkpoint is the changelog's base offset + the records written: 100 + 2.
      '3a flush 0/s at 102',
      '3a flush 1/s at 102',
      '3b committed 0',
      '3b committed 1',
      '3 onCommitted',
      '3c onCommit',
    ]);
    expect(h.tasks.map((t) => t.committedPositions?.get('in'))).toEqual([10n, 11n]);
  });

  it('should flush no store and mark no task committed when the transaction does not commit', async () => {
    const h = harness({ commitFails: true });
    await h.executor.initProducer();
    h.steps.length = 0;
    await expect(h.executor.maybeCommit(true)).rejects.toThrow('EndTxn failed');
    expect(h.steps.filter((s) => s.startsWith('3'))).toEqual([]);
    expect(h.tasks.every((t) => t.committedPositions === undefined)).toBe(true);
    expect(h.commits).toBe(0);
  });

  it('should stop as a zombie, sending nothing, when the producer id changed under it', async () => {
    const h = harness({ producerIdChanges: true });
    await h.executor.initProducer();
    h.steps.length = 0;
    const failure = await h.executor.maybeCommit(true).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(FatalStreamsError);
    expect((failure as FatalStreamsError).code).toBe('producer_fenced');
    expect(h.steps.some((s) => s.startsWith('2b') || s.startsWith('2c') || s.startsWith('3'))).toBe(false);
  });

  it('should refuse to commit with TaskMigratedError when an assignment arrived since the tasks were assigned', async () => {
    const h = harness({ assignmentChanged: true });
    await h.executor.initProducer();
    h.steps.length = 0;
    await expect(h.executor.maybeCommit(true)).rejects.toBeInstanceOf(TaskMigratedError);
    expect(h.steps).toEqual([]);
  });

  describe('commit when caught up', () => {
    const round = (records: number) => [
      {
        topic: 'in',
        partition: 0,
        records: Array.from({ length: records }, (_, i) => ({ offset: BigInt(10 + i) })),
        nextOffset: BigInt(10 + records),
        highWatermark: BigInt(10 + records),
        lastStableOffset: BigInt(10 + records),
      },
    ];
    const started = (h: Harness) => h.steps.filter((step) => step === '2a begin').length;

    it('should start a commit at once when the loop is caught up and records are pending, before the interval', async () => {
      const h = harness();
      await h.executor.initProducer();
      h.steps.length = 0;
      await h.executor.process(round(3) as never);
      await h.executor.maybeCommit(false, false);
      expect(h.steps).toEqual([]);
      await h.executor.maybeCommit(false, true);
      expect(h.steps.slice(0, 2)).toEqual(['1 prepare 0/s', '1 prepare 1/s']);
      // Steps 2 and 3 run in the background of the loop.
      for (let i = 0; i < 100 && h.commits === 0; i++) await new Promise((resolve) => setTimeout(resolve, 1));
      expect([started(h), h.commits]).toEqual([1, 1]);
    });

    it('should not start a commit when caught up with nothing pending, or while one is in flight', async () => {
      let endTxn = () => {};
      const h = harness({ endTxnGate: new Promise<void>((resolve) => (endTxn = resolve)) });
      await h.executor.initProducer();
      h.steps.length = 0;
      await h.executor.maybeCommit(false, true);
      expect(h.steps).toEqual([]);
      await h.executor.process(round(2) as never);
      await h.executor.maybeCommit(false, true);
      // The first commit is in flight (its EndTxn not answered yet): more records, caught up again, and
      // no second transaction starts until the first has settled.
      await h.executor.process(round(2) as never);
      const inflight = started(h);
      await h.executor.maybeCommit(false, true);
      expect(started(h)).toBe(inflight);
      endTxn();
      await h.executor.maybeCommit(true);
      expect(h.commits).toBe(2);
    });

    it('should wait for the interval or a full batch when COMMIT_WHEN_CAUGHT_UP is off', async () => {
      const h = harness({ commitWhenCaughtUp: false });
      await h.executor.initProducer();
      h.steps.length = 0;
      await h.executor.process(round(5) as never);
      await h.executor.maybeCommit(false, true);
      expect(h.steps).toEqual([]);
      await h.executor.maybeCommit(true);
      expect(h.commits).toBe(1);
    });
  });

  describe('processing a fetch round', () => {
    const part = (partition: number, topic: string, values: string[]) => ({
      topic,
      partition,
      records: values.map((value, i) => ({ offset: BigInt(10 + i), value })),
      nextOffset: BigInt(10 + values.length),
      highWatermark: BigInt(10 + values.length),
      lastStableOffset: BigInt(10 + values.length),
    });

    it('should load the keys of every task at once, then process the partitions in order, when the round fits the transaction', async () => {
      const h = harness({ slowPrefetch: true });
      await h.executor.process([part(0, 'in', ['a', 'b']), part(1, 'in', ['c']), part(0, 'legs', ['d'])] as never);
      expect(h.processing).toEqual([
        'collect 0 2',
        'collect 1 1',
        'collect 0 1',
        // One prefetch per task (both source topics of task 0 together), both in flight before either ends.
        'prefetch 0',
        'prefetch 1',
        'prefetched 0',
        'prefetched 1',
        'process 0 in 2 prefetched',
        'process 1 in 1 prefetched',
        'process 0 legs 1 prefetched',
      ]);
    });

    it('should load per partition and chunk when the round is larger than the room left in the transaction', async () => {
      const h = harness({ batchRecordsMax: 2 });
      await h.executor.initProducer();
      await h.executor.process([part(0, 'in', ['a', 'b', 'c']), part(1, 'in', ['d'])] as never);
      expect(h.processing.filter((step) => step.startsWith('process'))).toEqual([
        'process 0 in 2',
        'process 0 in 1',
        'process 1 in 1',
      ]);
      expect(h.processing.some((step) => step.startsWith('prefetch'))).toBe(false);
    });

    it('should take the dead letters of a partition into the transaction only with its processed records', async () => {
      const h = harness({ forged: 'x', task1StopsDuringProcessing: true });
      await h.executor.initProducer();
      h.steps.length = 0;
      // Task 1 stops while task 0 processes: its forged record is neither processed nor dead-lettered
      // (its offset does not move, so it is read again and dead-lettered then, once).
      await h.executor.process([part(0, 'legs', ['a', 'x']), part(1, 'legs', ['x', 'b'])] as never);
      expect(h.processing.filter((step) => step.startsWith('process'))).toEqual(['process 0 legs 1 prefetched']);
      await h.executor.maybeCommit(true);
      // The dead letter of task 0 and its store's 2 changelog records; nothing of the stopped task 1.
      expect(h.steps.filter((step) => step.startsWith('1') || step.startsWith('2b'))).toEqual([
        '1 prepare 0/s',
        '2b send 3',
      ]);
    });
  });
});
