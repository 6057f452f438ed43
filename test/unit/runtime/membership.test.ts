// GroupMembership (src/runtime/membership.ts) against a stand-in consumer: the heartbeat errors arrive
// through the same diagnostics channel @platformatic/kafka publishes them on, before its own callback.
import { EventEmitter } from 'node:events';
import { tracingChannel } from 'node:diagnostics_channel';
import type { Consumer } from '@platformatic/kafka';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { GroupMembership } from '../../../src/runtime/membership.ts';

const heartbeat = tracingChannel('plt:kafka:consumer:heartbeat');
const responses = tracingChannel('plt:kafka:connections:api');

let instances = 0;
class StandInConsumer extends EventEmitter {
  readonly instanceId = instances++;
  memberId: string | null = 'member-1';
  /** Member ids a LeaveGroup would have been sent for (the client sends none without a member id). */
  readonly leftWith: Array<string | null> = [];
  leaveGroup(): Promise<void> {
    this.leftWith.push(this.memberId);
    return Promise.resolve();
  }
}

const attached: GroupMembership[] = [];
afterEach(() => {
  for (const m of attached.splice(0)) m.detach();
});

function membership(overrides: { staticMembership?: boolean; leaveGroupOnClose?: boolean } = {}) {
  const m = new GroupMembership({
    instanceId: 'i1',
    staticMembership: true,
    leaveGroupOnClose: false,
    sessionTimeoutMs: 10_000,
    log: pino({ level: 'silent' }),
    ...overrides,
  });
  const consumer = new StandInConsumer();
  m.attach(consumer as unknown as Consumer);
  attached.push(m);
  return { m, consumer };
}

function heartbeatFails(client: unknown, apiId: string): void {
  heartbeat.error.publish({ client, operation: 'heartbeat', error: { message: 'failed', errors: [{ apiId }] } });
}

describe('GroupMembership', () => {
  it('should join with group.instance.id = INSTANCE_ID unless static membership is off', () => {
    expect(membership().m.consumerOptions()).toEqual({ groupInstanceId: 'i1' });
    expect(membership({ staticMembership: false }).m.consumerOptions()).toEqual({});
  });

  it('should stop when a heartbeat answers FENCED_INSTANCE_ID, and keep the client from rejoining', () => {
    const { m, consumer } = membership();
    heartbeatFails(consumer, 'FENCED_INSTANCE_ID');
    expect(m.fatal?.code).toBe('instance_fenced');
    expect(m.fatal?.message).toMatch(/group\.instance\.id i1/);
    // Deactivated without a LeaveGroup for the dead member id.
    expect(consumer.leftWith).toEqual([null]);
  });

  it('should stop when a JoinGroup or SyncGroup on its own connections answers FENCED_INSTANCE_ID', () => {
    const { m, consumer } = membership();
    const error = { message: 'failed', errors: [{ apiId: 'FENCED_INSTANCE_ID' }] };
    responses.error.publish({ connection: { ownerId: consumer.instanceId + 1000 }, apiKey: 11, error });
    expect(m.fatal).toBeUndefined();
    responses.error.publish({ connection: { ownerId: consumer.instanceId }, apiKey: 11, error });
    expect(m.fatal?.code).toBe('instance_fenced');
    expect(consumer.leftWith).toEqual([null]);
  });

  it('should ignore heartbeat errors of other consumers', () => {
    const { m } = membership();
    heartbeatFails(new StandInConsumer(), 'FENCED_INSTANCE_ID');
    expect(m.fatal).toBeUndefined();
  });

  it('should treat FENCED_INSTANCE_ID from a commit as fatal only for a static member still holding the member id it sent', () => {
    const error = { errors: [{ apiId: 'FENCED_INSTANCE_ID' }] };
    const fenced = (options: { staticMembership?: boolean }, rejoinedAs: string | null | undefined, e = error) => {
      const { m, consumer } = membership(options);
      const c = consumer as unknown as Consumer;
      expect(m.commitMember(c)).toEqual({
        memberId: 'member-1',
        groupInstanceId: options.staticMembership === false ? null : 'i1',
      });
      if (rejoinedAs !== undefined) consumer.memberId = rejoinedAs;
      return m.fencedError(e, c)?.code;
    };
    expect(fenced({}, undefined)).toBe('instance_fenced');
    expect(fenced({ staticMembership: false }, undefined)).toBeUndefined();
    expect(fenced({}, undefined, { errors: [{ apiId: 'ILLEGAL_GENERATION' }] })).toBeUndefined();
    // Its own rejoin after an expiry (a new member id, or none while the client rejoins): a migration.
    expect(fenced({}, 'member-2')).toBeUndefined();
    expect(fenced({}, null)).toBeUndefined();
  });

  it('should count assignments by the cause the heartbeat reported, and keep the generation', () => {
    const { m, consumer } = membership();
    consumer.emit('consumer:group:join', { generationId: 4 });
    heartbeatFails(consumer, 'REBALANCE_IN_PROGRESS');
    consumer.emit('consumer:group:join', { generationId: 5 });
    heartbeatFails(consumer, 'UNKNOWN_MEMBER_ID');
    consumer.emit('consumer:group:join', { generationId: 6 });
    m.rejoining();
    consumer.emit('consumer:group:join', { generationId: 7 });
    const status = m.status();
    expect(status.generationId).toBe(7);
    expect(status.rebalances).toEqual({
      start: 1,
      group_rebalance: 1,
      member_expired: 1,
      generation_stale: 0,
      rejoin: 1,
    });
    expect(status.unassignedMs).toBeGreaterThanOrEqual(0);
  });

  it('should close without a LeaveGroup as a static member, and leave when asked to or when dynamic', async () => {
    for (const [options, leftWith] of [
      [{}, null],
      [{ leaveGroupOnClose: true }, 'member-1'],
      [{ staticMembership: false }, 'member-1'],
    ] as const) {
      const { m, consumer } = membership(options);
      await m.leaveOrStay(consumer as unknown as Consumer);
      expect(consumer.leftWith, JSON.stringify(options)).toEqual([leftWith]);
    }
  });
});
