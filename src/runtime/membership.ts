// Static group membership (KIP-345) and what the group does to this instance: its generation, its
// rebalances by cause and the time it spent without an assignment.
//
// With static membership the consumer joins with group.instance.id = INSTANCE_ID. A restart within the
// session timeout then rejoins as the same member: the coordinator hands it its previous assignment in the
// same generation, and the other instances see no rebalance at all. That needs two things the client
// (@platformatic/kafka 2.12, dist/clients/consumer/consumer.js) does not do by itself:
//   1. closing without a LeaveGroup: its close() and leaveGroup() always send one when the member has a
//      member id (#performLeaveGroup), and a LeaveGroup removes a static member at once and rebalances the
//      group. The member id is dropped first, so #performLeaveGroup returns without a request; the broker
//      keeps the member until the session timeout or its return. An instance scaled away leaves explicitly
//      (LEAVE_GROUP_ON_CLOSE / `bankstream start --leave-group`).
//   2. stopping on FENCED_INSTANCE_ID: another process joined with the same group.instance.id. The client
//      takes that answer (to a Heartbeat, JoinGroup or SyncGroup) as "rejoin" and drops its member id
//      (#getRejoinError), so its next JoinGroup, with the same instance id and no member id, would take the
//      membership back from the newer process, which then does the same: two processes would fence each
//      other forever. The connection publishes every failed response on its diagnostics channel before
//      the client's callback runs; there the membership is deactivated (the callback then neither rejoins
//      nor heartbeats) and the engine stops, as the Java client does (FencedInstanceIdException is fatal).
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Consumer } from '@platformatic/kafka';
import type { Logger } from 'pino';
import { kafkaErrorIds } from '../kafka/errors.ts';
import { type MembershipStatus, REBALANCE_CAUSES, type RebalanceCause } from '../streams/membership.ts';
import { FatalStreamsError } from './errors.ts';

export { type MembershipStatus, REBALANCE_CAUSES, type RebalanceCause } from '../streams/membership.ts';

/** The heartbeat answers that make the client rejoin, and the cause each one stands for. */
const CAUSE_OF_ERROR: Record<string, RebalanceCause> = {
  // The coordinator started a rebalance: a member joined, left, timed out or changed its subscription.
  REBALANCE_IN_PROGRESS: 'group_rebalance',
  // This member was removed (its session expired: a pause, a network partition).
  UNKNOWN_MEMBER_ID: 'member_expired',
  ILLEGAL_GENERATION: 'generation_stale',
};

/** The tracing channels @platformatic/kafka publishes a failed heartbeat and a failed response on (diagnostic.js). */
const HEARTBEAT_ERRORS = 'tracing:plt:kafka:consumer:heartbeat:error';
const RESPONSE_ERRORS = 'tracing:plt:kafka:connections:api:error';

export interface MembershipOptions {
  instanceId: string;
  /** STATIC_MEMBERSHIP: join with group.instance.id = instanceId (default true). */
  staticMembership: boolean;
  /** LEAVE_GROUP_ON_CLOSE / --leave-group: a static member leaves the group when it stops (scale-down). */
  leaveGroupOnClose: boolean;
  sessionTimeoutMs: number;
  log: Logger;
}

export class GroupMembership {
  readonly #options: MembershipOptions;
  #consumer: Consumer | undefined;
  #fatal: FatalStreamsError | undefined;
  #generationId: number | undefined;
  #pendingCause: RebalanceCause = 'start';
  readonly #rebalances = Object.fromEntries(REBALANCE_CAUSES.map((c) => [c, 0])) as Record<RebalanceCause, number>;
  #unassignedSinceMs: number | undefined = Date.now();
  #unassignedMs = 0;
  #commitMemberId: string | undefined;
  readonly #onHeartbeatError = (message: unknown) =>
    this.#heartbeatFailed(message as { client?: unknown; error?: unknown });
  readonly #onResponseError = (message: unknown) =>
    this.#responseFailed(message as { connection?: { ownerId?: unknown }; error?: unknown });

  constructor(options: MembershipOptions) {
    this.#options = options;
  }

  get groupInstanceId(): string | undefined {
    return this.#options.staticMembership ? this.#options.instanceId : undefined;
  }

  /** The consumer options static membership sets. */
  consumerOptions(): { groupInstanceId?: string } {
    const id = this.groupInstanceId;
    return id === undefined ? {} : { groupInstanceId: id };
  }

  /** Set when another process took this instance's group.instance.id: the engine must stop. */
  get fatal(): FatalStreamsError | undefined {
    return this.#fatal;
  }

  /** Watches the consumer's heartbeats and assignments; call once, before it joins. */
  attach(consumer: Consumer): void {
    this.#consumer = consumer;
    subscribe(HEARTBEAT_ERRORS, this.#onHeartbeatError);
    if (this.groupInstanceId !== undefined) subscribe(RESPONSE_ERRORS, this.#onResponseError);
    consumer.on('consumer:group:join', (payload: { generationId?: number }) => this.#assigned(payload.generationId));
  }

  detach(): void {
    unsubscribe(HEARTBEAT_ERRORS, this.#onHeartbeatError);
    unsubscribe(RESPONSE_ERRORS, this.#onResponseError);
  }

  /** The engine lost its membership and joins again (the client gave up rejoining, or an outage). */
  rejoining(): void {
    this.#pendingCause = 'rejoin';
    this.#unassignedSinceMs ??= Date.now();
  }

  /** The member a TxnOffsetCommit is sent as (remembered: a FENCED_INSTANCE_ID answer is judged against it). */
  commitMember(consumer: Consumer): { memberId: string; groupInstanceId: string | null } {
    this.#commitMemberId = consumer.memberId ?? '';
    return { memberId: this.#commitMemberId, groupInstanceId: this.groupInstanceId ?? null };
  }

  /**
   * A FatalStreamsError when a commit's FENCED_INSTANCE_ID says another process has this instance's
   * group.instance.id. Not when this consumer's own member id changed since the commit was sent: a member
   * that was expired (a pause longer than the session timeout) rejoins under a new member id, and a commit
   * sent meanwhile with the old one (or with none, while the client rejoins) is fenced by that rejoin —
   * a migration, handled as one.
   */
  fencedError(error: unknown, consumer: Consumer): FatalStreamsError | undefined {
    if (this.groupInstanceId === undefined || !kafkaErrorIds(error).has('FENCED_INSTANCE_ID')) return undefined;
    const sentAs = this.#commitMemberId;
    if (sentAs === undefined || sentAs === '' || sentAs !== consumer.memberId) {
      this.#options.log.warn(
        { sentAs, memberId: consumer.memberId },
        'a commit was fenced by this instance rejoining the group under a new member id; re-opening the tasks',
      );
      return undefined;
    }
    return this.#fence(error);
  }

  /**
   * At shutdown: leave the group (a dynamic member, or a static one scaled away), or keep the static
   * membership so that a restart within the session timeout gets the same assignment without a rebalance.
   */
  async leaveOrStay(consumer: Consumer): Promise<void> {
    const { staticMembership, leaveGroupOnClose, sessionTimeoutMs, log } = this.#options;
    if (!staticMembership || leaveGroupOnClose || this.#fatal) {
      // A fenced member's id is dead already: nothing to leave.
      if (this.#fatal) consumer.memberId = null;
      else if (staticMembership) log.info('leaving the group (LEAVE_GROUP_ON_CLOSE): its partitions move at once');
      await (consumer.leaveGroup(false) as unknown as Promise<void>);
      return;
    }
    log.info(
      { groupInstanceId: this.groupInstanceId, sessionTimeoutMs },
      'static member stopping without leaving the group: a restart within the session timeout keeps its partitions',
    );
    // #performLeaveGroup sends nothing for a member without a member id (see the top of this file).
    consumer.memberId = null;
    await (consumer.leaveGroup(false) as unknown as Promise<void>);
  }

  status(): MembershipStatus {
    const current = this.#unassignedSinceMs === undefined ? 0 : Date.now() - this.#unassignedSinceMs;
    return {
      groupInstanceId: this.groupInstanceId,
      generationId: this.#generationId,
      rebalances: { ...this.#rebalances },
      unassignedMs: this.#unassignedMs + current,
    };
  }

  #assigned(generationId: number | undefined): void {
    this.#rebalances[this.#pendingCause]++;
    this.#options.log.info(
      { generation: generationId, previousGeneration: this.#generationId, cause: this.#pendingCause },
      'group assignment by cause',
    );
    this.#pendingCause = 'rejoin';
    this.#generationId = generationId;
    if (this.#unassignedSinceMs !== undefined) this.#unassignedMs += Date.now() - this.#unassignedSinceMs;
    this.#unassignedSinceMs = undefined;
  }

  /** Any response to this consumer's connections: FENCED_INSTANCE_ID (JoinGroup, SyncGroup, Heartbeat) stops it. */
  #responseFailed(context: { connection?: { ownerId?: unknown }; error?: unknown }): void {
    const consumer = this.#consumer;
    if (consumer === undefined || context.connection?.ownerId !== consumer.instanceId) return;
    if (!kafkaErrorIds(context.error).has('FENCED_INSTANCE_ID')) return;
    this.#fence(context.error);
    this.#deactivate(consumer);
  }

  /** Runs before the client's callback: without an active membership it neither rejoins nor heartbeats. */
  #deactivate(consumer: Consumer): void {
    consumer.memberId = null;
    (consumer.leaveGroup(false) as unknown as Promise<void>).catch(() => undefined);
  }

  #heartbeatFailed(context: { client?: unknown; error?: unknown }): void {
    const consumer = this.#consumer;
    if (consumer === undefined || context.client !== consumer) return;
    const ids = kafkaErrorIds(context.error);
    if (ids.has('FENCED_INSTANCE_ID') && this.groupInstanceId !== undefined) {
      this.#fence(context.error);
      this.#deactivate(consumer);
      return;
    }
    for (const id of ids) {
      const cause = CAUSE_OF_ERROR[id];
      if (cause === undefined) continue;
      this.#pendingCause = cause;
      this.#unassignedSinceMs ??= Date.now();
      return;
    }
  }

  #fence(cause: unknown): FatalStreamsError {
    if (!this.#fatal) {
      this.#fatal = new FatalStreamsError(
        'instance_fenced',
        `another process joined the group with group.instance.id ${this.groupInstanceId} (INSTANCE_ID): this one stops. ` +
          'Two live processes must never share an INSTANCE_ID; the newer one keeps the membership',
        { cause },
      );
      this.#options.log.error({ err: this.#fatal }, 'fenced by a newer member with the same group.instance.id');
    }
    return this.#fatal;
  }
}
