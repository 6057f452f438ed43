// The StreamThread (as in Kafka Streams): the one loop of an engine. Each iteration:
//   1. rejoin when the group membership is gone; rebalance when a new assignment arrived
//   2. fetch a batch for every running task (the next fetch is started before the batch is processed)
//   3. the task executor processes it (per task, one multi-get per store for the batch's keys, then records
//      in offset order) and commits when due (task-executor.ts: at most one transaction in flight)
// Any commit failure, fencing or rebalance: wait for the transaction in flight, abort, drop every
// uncommitted cache (both store layers), close the tasks, re-open them for the current assignment
// (restore from changelogs), resume from committed offsets.
import type { ConnectionOptions } from '@platformatic/kafka';
import type { Logger } from 'pino';
import {
  backoffDelayMs,
  BROKER_BACKOFF,
  isBrokerUnavailable,
  retryUntilStopped,
  sleepUnlessStopped,
  StoppedError,
} from '../kafka/retry.ts';
import type { PartitionLag } from '../streams/status.ts';
import type { EngineClients } from './engine-clients.ts';
import {
  type Assignment,
  type EngineContext,
  MAX_CONSECUTIVE_FAILURES,
  STATE_CLEANUP_INTERVAL_MS,
} from './engine-options.ts';
import { FatalStreamsError, isMigratedError, TaskMigratedError } from './errors.ts';
import { FetchPositions } from './fetch-positions.ts';
import { type FetchPosition, type FetchRound, recordsOf } from '../kafka/fetcher.ts';
import { classifyLoopError, permanentStartError } from './loop-errors.ts';
import type { StateDirectoryCleaner } from './state-cleaner.ts';
import type { StateManager } from './state-manager.ts';
import type { TaskExecutor } from './task-executor.ts';
import type { TaskManager } from './task-manager.ts';
import type { TopicLayout } from './topic-layout.ts';

export interface StreamThreadParts {
  cleaner: StateDirectoryCleaner;
  clients: EngineClients;
  layout: TopicLayout;
  state: StateManager;
  tasks: TaskManager;
  executor: TaskExecutor;
}

export class StreamThread {
  readonly #ctx: EngineContext;
  readonly #parts: StreamThreadParts;
  readonly #log: Logger;
  readonly #connection: ConnectionOptions | undefined;
  #loop: Promise<void> | undefined;
  #stopRequested = false;
  #fatal: Error | undefined;
  #consecutiveFailures = 0;
  /** Broker failures in a row seen by the loop (the backoff's attempt number). */
  #brokerFailures = 0;
  /** The client gave up rejoining the group (see #watchMembership): the loop rejoins itself. */
  #membershipLost = false;
  /** Since when the consumer has not been an active member (no heartbeat scheduled); undefined while it is. */
  #inactiveSinceMs: number | undefined;
  #stateCleanedAtMs = Number.NEGATIVE_INFINITY;
  readonly #fetch = new FetchPositions();

  constructor(ctx: EngineContext, parts: StreamThreadParts) {
    this.#ctx = ctx;
    this.#parts = parts;
    this.#log = ctx.log;
    this.#connection = ctx.options.connection;
  }

  get fatal(): Error | undefined {
    return this.#fatal;
  }

  /** Checks the topics, fences zombies, joins the group and starts the loop. */
  async start(): Promise<void> {
    const { clients, layout, tasks, executor } = this.#parts;
    const { topology, options, internal } = this.#ctx;
    // Every broker wait of the start is retried until the broker answers or close() is called: an
    // instance starting while the broker restarts waits for it (issue 17), it does not exit.
    await this.#untilBrokerAnswers('metadata', () =>
      layout.check(clients.consumer, topology, options.applicationId, internal.deadLetterTopics()),
    );
    await this.#untilBrokerAnswers('initProducerId', () => executor.initProducer());
    tasks.watchAssignments();
    clients.consumer.on('error', (error: Error) => this.#log.warn({ err: error }, 'consumer error'));
    this.#ctx.membership.attach(clients.consumer);
    this.#watchMembership();
    clients.consumer.topics.trackAll(...topology.sourceTopics());
    await this.#joinGroup();
    this.#loop = this.#run();
  }

  /** Stops the loop (it commits what is processed), closes the tasks, leaves the group, closes the clients. */
  async close(): Promise<void> {
    this.#stopRequested = true;
    this.#ctx.stop.abort();
    await this.#loop?.catch(() => undefined);
    this.#loop = undefined;
    await this.#shutdown();
  }

  /** Resolves when the loop ends (fatal error or close). */
  async done(): Promise<void> {
    await this.#loop;
  }

  /** Consumer lag of every running task's source partitions, as of the last fetch of each. */
  lag(): PartitionLag[] {
    return this.#fetch.lag(this.#parts.tasks.active());
  }

  /**
   * The loop, bounded: each pass runs until close() or an error; after an error (aborted, tasks closed)
   * the next pass starts after a pause (100 ms, or the broker backoff during an outage). Failures that are
   * neither rebalances nor outages count, and MAX_CONSECUTIVE_FAILURES of them in a row stop the instance;
   * outages are waited out however long they last, as close() can always end the wait.
   */
  async #run(): Promise<void> {
    for (;;) {
      try {
        await this.#pass();
        return;
      } catch (error) {
        await this.#onLoopError(error);
        if (this.#fatal || this.#stopRequested) return;
      }
    }
  }

  async #pass(): Promise<void> {
    const { tasks, executor, clients } = this.#parts;
    let inflight: { epoch: number; promise: Promise<FetchRound> } | undefined;
    while (!this.#stopRequested) {
      // 1.
      if (this.#ctx.membership.fatal) throw this.#ctx.membership.fatal;
      if (this.#membershipLost || this.#inactiveTooLong()) {
        inflight = undefined;
        await this.#rejoin();
        continue;
      }
      const assignment = tasks.pendingAssignment;
      if (assignment) {
        inflight = undefined;
        await this.#rebalance(assignment);
        continue;
      }
      await this.#maybeCleanState();
      // 2.
      const positions = this.#fetchPositions();
      if (positions.length === 0) {
        await executor.maybeCommit(true);
        await sleep(50);
        continue;
      }
      inflight ??= { epoch: this.#fetch.epoch, promise: clients.fetcher.fetchRound(positions) };
      const current = inflight;
      inflight = undefined;
      let round: FetchRound;
      try {
        round = await current.promise;
      } catch (error) {
        if (isMigratedError(error)) throw new TaskMigratedError('fetch failed', { cause: error });
        await this.#pauseAfterBrokerFailure('fetch', error);
        continue;
      }
      this.#brokerAnswered();
      this.#ctx.options.onFetchRound({ records: recordsOf(round) });
      if (current.epoch !== this.#fetch.epoch) continue;
      if (round.outOfRange.length > 0) await tasks.stopOutOfRange(round.outOfRange);
      const fetched = round.fetched;
      this.#fetch.advance(fetched);
      // Pipelining: the broker prepares the next batch while this one is processed.
      if (!this.#stopRequested && !tasks.assignmentChanged())
        inflight = { epoch: this.#fetch.epoch, promise: clients.fetcher.fetchRound(this.#fetchPositions()) };
      inflight?.promise.catch(() => undefined);
      // 3.
      await executor.process(fetched);
      await executor.maybeCommit(false, caughtUp(fetched));
    }
    await executor.maybeCommit(true);
  }

  async #onLoopError(error: unknown): Promise<void> {
    if (error instanceof StoppedError && this.#stopRequested) return;
    // FENCED_INSTANCE_ID: another process has this group.instance.id; it is not a migration to rejoin from.
    this.#fatal ??= this.#ctx.membership.fencedError(error, this.#parts.clients.consumer);
    const verdict = classifyLoopError(error, this.#connection);
    if (verdict.kind === 'fatal' || this.#fatal) {
      this.#fatal ??= verdict.kind === 'fatal' ? verdict.fatal : undefined;
      this.#ctx.state = 'FAILED';
      this.#log.error({ err: error }, 'fatal streams error; stopping');
      await this.#closeTasks();
      return;
    }
    if (verdict.fatal) this.#fatal = verdict.fatal;
    else if (verdict.countsAsFailure) this.#consecutiveFailures++;
    if (this.#consecutiveFailures > MAX_CONSECUTIVE_FAILURES) {
      this.#fatal = new FatalStreamsError(
        'commit_failing',
        `${this.#consecutiveFailures} attempts in a row failed; stopping rather than looping`,
        { cause: error },
      );
    }
    if (!verdict.brokerDown)
      this.#log.warn(
        { err: error, attempt: this.#consecutiveFailures },
        'task migrated or commit failed; aborting and re-opening tasks',
      );
    await this.#closeTasks();
    if (this.#fatal) {
      this.#ctx.state = 'FAILED';
      this.#log.error({ err: this.#fatal }, 'fatal streams error; stopping');
      return;
    }
    this.#parts.tasks.forgetAssignment(false);
    if (verdict.brokerDown) await this.#pauseAfterBrokerFailure('commit or rebalance', error);
    else await sleep(100);
  }

  async #rebalance(assignment: Assignment): Promise<void> {
    const { tasks, executor } = this.#parts;
    this.#ctx.state = 'REBALANCING';
    tasks.clearStopped();
    this.#ctx.emitStatus();
    // Work processed under the previous generation cannot be committed any more: drop it.
    await this.#closeTasks();
    const restoredRecords = await tasks.assign(assignment);
    this.#fetch.invalidate();
    executor.resetCommitTimer();
    this.#ctx.state = 'RUNNING';
    this.#brokerAnswered();
    this.#log.info(
      {
        generation: assignment.generationId,
        partitions: tasks.runningPartitions(),
        stopped: tasks.stopped().map((s) => `${s.topic}-${s.partition}`),
        standby: assignment.standby,
        restoredRecords,
      },
      'tasks running',
    );
    this.#ctx.emitStatus();
  }

  /** The group membership is gone: drop the tasks (their generation cannot commit) and join again. */
  async #rejoin(): Promise<void> {
    this.#ctx.state = 'REBALANCING';
    this.#ctx.emitStatus();
    await this.#closeTasks();
    this.#parts.tasks.forgetAssignment(true);
    this.#ctx.membership.rejoining();
    await this.#joinGroup();
  }

  /** Waits for the transaction in flight, aborts, drops what is uncommitted and closes the active tasks. */
  async #closeTasks(): Promise<void> {
    await this.#parts.executor.abort();
    await this.#parts.tasks.closeAll();
    this.#fetch.invalidate();
  }

  /** Runs a broker step until it succeeds; errors that waiting cannot heal end it (as FatalStreamsError when they are Kafka's). */
  #untilBrokerAnswers<T>(step: string, run: () => Promise<T>): Promise<T> {
    return retryUntilStopped(run, {
      step,
      outage: this.#ctx.outage,
      signal: this.#ctx.stop.signal,
      permanent: (error) => permanentStartError(error, this.#connection),
    });
  }

  /**
   * JoinGroup (and its SyncGroup), retried until the broker answers. The client retries a JoinGroup
   * `retries` times on its own (#retryJoinGroup in its consumer.js) and then gives up; we start it again.
   */
  async #joinGroup(): Promise<void> {
    const { consumer } = this.#parts.clients;
    // Folders measured too far behind their changelogs are not advertised as warm (member info).
    await this.#parts.cleaner.measureLocal(new Set(this.#parts.tasks.standbyPartitions()));
    await this.#untilBrokerAnswers('joinGroup', () => consumer.joinGroup({}) as Promise<unknown>);
    this.#membershipLost = false;
  }

  /**
   * When a heartbeat says the member must rejoin, the client rejoins by itself; when that rejoin fails
   * (the broker is down, its retries run out) it emits 'error', stops heartbeating and never tries again.
   * It emits 'consumer:rejoin' either way: a consumer that is not active after it has given up, so the
   * loop rejoins (and meanwhile runs nothing: its assignment is gone).
   */
  #watchMembership(): void {
    const { consumer } = this.#parts.clients;
    consumer.on('consumer:rejoin', () => {
      if (consumer.isActive() || this.#stopRequested) return;
      this.#log.warn('the client gave up rejoining the group; rejoining until the broker answers');
      this.#membershipLost = true;
    });
  }

  /**
   * A fallback for #watchMembership: a consumer with no heartbeat scheduled for longer than a JoinGroup can
   * block (the rebalance timeout) plus a session is not rejoining by itself any more.
   */
  #inactiveTooLong(): boolean {
    if (this.#parts.clients.consumer.isActive()) {
      this.#inactiveSinceMs = undefined;
      return false;
    }
    const now = Date.now();
    this.#inactiveSinceMs ??= now;
    const { sessionTimeoutMs } = this.#ctx.options;
    const boundMs = Math.max(30_000, sessionTimeoutMs) + sessionTimeoutMs;
    if (now - this.#inactiveSinceMs < boundMs) return false;
    this.#log.warn(
      { inactiveForMs: now - this.#inactiveSinceMs },
      'the consumer has not been a group member for too long; rejoining',
    );
    this.#inactiveSinceMs = undefined;
    return true;
  }

  /** A broker call failed with what looks like an outage: report it and wait (bounded backoff, interrupted by close()). */
  async #pauseAfterBrokerFailure(step: string, error: unknown): Promise<void> {
    const retryInMs = backoffDelayMs(BROKER_BACKOFF, this.#brokerFailures++);
    if (isBrokerUnavailable(error)) this.#ctx.outage.failed(step, error, retryInMs);
    else this.#log.warn({ err: error, step, retryInMs }, `${step} failed; retrying`);
    await sleepUnlessStopped(retryInMs, this.#ctx.stop.signal);
  }

  /** A commit went through, or the broker answered: the failure counters start again. */
  committed(): void {
    this.#consecutiveFailures = 0;
    this.#brokerAnswered();
  }

  #brokerAnswered(): void {
    this.#brokerFailures = 0;
    this.#ctx.outage.recovered();
  }

  /** Deletes state folders unused for longer than the delay; between iterations, so never while a rebalance opens stores. */
  async #maybeCleanState(): Promise<void> {
    const now = Date.now();
    const { tasks } = this.#parts;
    const assigned = tasks.assigned;
    // Not once a stop is requested: close() must not wait for a sweep (or its listOffsets during a broker outage).
    if (now - this.#stateCleanedAtMs < STATE_CLEANUP_INTERVAL_MS || assigned === undefined || this.#stopRequested)
      return;
    this.#stateCleanedAtMs = now;
    try {
      const { deleted } = await this.#parts.cleaner.sweep(
        new Set([...assigned.partitions, ...tasks.standbyPartitions()]),
      );
      if (deleted.length > 0) this.#log.info({ deleted }, 'deleted unused state folders');
      this.#ctx.options.onStateCleanup(deleted);
    } catch (error) {
      this.#log.warn({ err: error }, 'state cleanup failed; retrying at the next interval');
    }
  }

  #fetchPositions(): FetchPosition[] {
    const { tasks } = this.#parts;
    return this.#fetch.of(tasks.active(), (partition) => tasks.isStopped(partition));
  }

  async #shutdown(): Promise<void> {
    const { clients, tasks } = this.#parts;
    this.#ctx.state = 'STOPPING';
    await this.#closeTasks();
    await tasks.closeStandbys();
    await clients.standbyConsumer.close(true).catch(() => undefined);
    await this.#ctx.membership.leaveOrStay(clients.consumer).catch(() => undefined);
    this.#ctx.membership.detach();
    await clients.consumer.close(true).catch(() => undefined);
    await clients.producer.close(true).catch(() => undefined);
    this.#ctx.state = this.#fatal ? 'FAILED' : 'STOPPED';
    this.#ctx.emitStatus();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * True when a fetch round brought every partition up to its last stable offset (read_committed: nothing
 * more to read now), so the records just processed need not wait for more before they are committed.
 */
export function caughtUp(fetched: FetchRound['fetched']): boolean {
  for (const part of fetched) if (part.nextOffset < part.lastStableOffset) return false;
  return true;
}
