// The stream thread's loop is bounded: failures that are neither rebalances nor outages end it after
// MAX_CONSECUTIVE_FAILURES passes in a row (a loop of passes, not recursion), and a commit in between
// starts the count again. The Kafka clients and the tasks are stand-ins (the loop on the real broker is
// covered by test/integration/engine and test/integration/resilience).
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { type EngineContext, MAX_CONSECUTIVE_FAILURES } from '../../../src/runtime/engine-options.ts';
import { FatalStreamsError } from '../../../src/runtime/errors.ts';
import { recordsOf } from '../../../src/kafka/fetcher.ts';
import { StreamThread, type StreamThreadParts, caughtUp } from '../../../src/runtime/stream-thread.ts';

/** A thread with no tasks: each pass commits (forced, nothing assigned) and `commit` decides what happens. */
function thread(commit: (attempt: number, thread: StreamThread) => Promise<void>) {
  let commits = 0;
  let closes = 0;
  const ctx = {
    topology: { sourceTopics: () => ['in'] },
    options: { sessionTimeoutMs: 10_000, applicationId: 'app' },
    log: pino({ level: 'silent' }),
    internal: { deadLetterTopics: () => [] },
    outage: { recovered: () => {}, failed: () => {} },
    stop: new AbortController(),
    membership: {
      attach: () => {},
      detach: () => {},
      rejoining: () => {},
      fatal: undefined,
      fencedError: () => undefined,
      leaveOrStay: async () => {},
    },
    state: 'STARTING',
    emitStatus: () => {},
  } as unknown as EngineContext;
  const closed = async () => {};
  const parts = {
    clients: {
      consumer: {
        on: () => {},
        isActive: () => true,
        topics: { trackAll: () => {} },
        joinGroup: async () => {},
        leaveGroup: async () => {},
        close: closed,
      },
      standbyConsumer: { close: closed },
      producer: { close: closed },
      fetcher: {},
    },
    layout: { check: async () => {} },
    cleaner: { measureLocal: async () => {}, sweep: async () => ({ deleted: [] }) },
    tasks: {
      watchAssignments: () => {},
      standbyPartitions: () => [],
      pendingAssignment: undefined,
      assigned: undefined,
      active: () => [][Symbol.iterator](),
      isStopped: () => false,
      forgetAssignment: () => {},
      closeAll: async () => {
        closes++;
      },
      closeStandbys: async () => {},
    },
    executor: {
      initProducer: async () => {},
      abort: async () => {},
      // The real executor tells the thread of every commit (onCommitted).
      maybeCommit: async () => commit(++commits, t),
    },
  } as unknown as StreamThreadParts;
  const t: StreamThread = new StreamThread(ctx, parts);
  return { t, ctx, commits: () => commits, closes: () => closes };
}

describe('StreamThread', () => {
  it('should stop with commit_failing after MAX_CONSECUTIVE_FAILURES failed passes in a row', async () => {
    const h = thread(async () => {
      throw new Error('a store failed');
    });
    await h.t.start();
    await h.t.done();
    expect(h.t.fatal).toBeInstanceOf(FatalStreamsError);
    expect((h.t.fatal as FatalStreamsError).code).toBe('commit_failing');
    expect(h.ctx.state).toBe('FAILED');
    // One pass per failure, each ending with the tasks closed.
    expect(h.commits()).toBe(MAX_CONSECUTIVE_FAILURES + 1);
    expect(h.closes()).toBe(MAX_CONSECUTIVE_FAILURES + 1);
    await h.t.close();
  });

  it('should count the failures in a row again after a pass that committed', async () => {
    const h = thread(async (attempt, t) => {
      // Attempts 1-5 fail, attempt 6 commits (and tells the thread), then every attempt fails again.
      if (attempt === 6) return t.committed();
      throw new Error('a store failed');
    });
    await h.t.start();
    await h.t.done();
    expect((h.t.fatal as FatalStreamsError).code).toBe('commit_failing');
    expect(h.commits()).toBe(6 + MAX_CONSECUTIVE_FAILURES + 1);
    await h.t.close();
  });
});

describe('caughtUp', () => {
  const part = (nextOffset: bigint, lastStableOffset: bigint) => ({
    topic: 't',
    partition: 0,
    records: [],
    nextOffset,
    highWatermark: lastStableOffset + 3n,
    lastStableOffset,
  });

  it('should be true only when every fetched partition reached its last stable offset', () => {
    expect(caughtUp([])).toBe(true);
    expect(caughtUp([part(5n, 5n), part(9n, 9n)])).toBe(true);
    // A partition past its LSO (records of an open transaction above it are not readable yet): caught up.
    expect(caughtUp([part(6n, 5n)])).toBe(true);
    expect(caughtUp([part(5n, 5n), part(8n, 9n)])).toBe(false);
  });
});

describe('recordsOf', () => {
  it('should count the records of every partition of a round, and 0 for a round of markers only', () => {
    const part = (records: number) => ({
      topic: 't',
      partition: 0,
      records: Array.from({ length: records }, () => ({}) as never),
      nextOffset: 1n,
      highWatermark: 1n,
      lastStableOffset: 1n,
    });
    expect(recordsOf({ fetched: [] })).toBe(0);
    expect(recordsOf({ fetched: [part(0), part(0)] })).toBe(0);
    expect(recordsOf({ fetched: [part(2), part(0), part(5)] })).toBe(7);
  });
});
