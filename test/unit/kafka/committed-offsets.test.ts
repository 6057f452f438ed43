// Reading committed offsets (src/kafka/committed-offsets.ts): errors decide. An answer that waiting cannot
// change fails at once with a message naming it; a "not now" answer is asked again until the deadline.
// The error trees are the client's own classes (ProtocolError, MultipleErrors, NetworkError).
import { type Consumer, MultipleErrors, NetworkError, ProtocolError } from '@platformatic/kafka';
import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  classifyOffsetFetchError,
  CommittedOffsetsError,
  fetchStableOffsets,
  toOffsets,
} from '../../../src/kafka/committed-offsets.ts';
import { KafkaAccessError } from '../../../src/kafka/security.ts';

const wrap = (inner: Error) => new MultipleErrors('findGroupCoordinator failed 1 times.', [inner]);

/** A consumer whose coordinator lookup fails with `error` every time, counting the attempts. */
function failingConsumer(error: Error): { consumer: Consumer; attempts: () => number } {
  let attempts = 0;
  const consumer = {
    groupId: 'app',
    findGroupCoordinator: async () => {
      attempts += 1;
      throw error;
    },
  } as unknown as Consumer;
  return { consumer, attempts: () => attempts };
}

const options = { clientId: 'test-offsets', connection: {}, timeoutMs: 300, retryDelayMs: 5 };
const topics = new Map([['transaction_initiated', [0, 1]]]);

describe('classifyOffsetFetchError', () => {
  it.each([
    'GROUP_AUTHORIZATION_FAILED',
    'TOPIC_AUTHORIZATION_FAILED',
    'CLUSTER_AUTHORIZATION_FAILED',
    'SASL_AUTHENTICATION_FAILED',
  ])('should fail with a KafkaAccessError naming the setting when the broker answers %s', (apiId) => {
    const verdict = classifyOffsetFetchError(wrap(new ProtocolError(apiId)), 'app');
    expect('fail' in verdict && verdict.fail).toBeInstanceOf(KafkaAccessError);
  });

  it.each(['UNKNOWN_TOPIC_OR_PARTITION', 'UNKNOWN_TOPIC_ID', 'GROUP_ID_NOT_FOUND', 'INVALID_GROUP_ID'])(
    'should fail with a CommittedOffsetsError when the broker answers %s',
    (apiId) => {
      const verdict = classifyOffsetFetchError(wrap(new ProtocolError(apiId)), 'app');
      if (!('fail' in verdict)) throw new Error(`expected a failure, got ${JSON.stringify(verdict)}`);
      expect(verdict.fail).toBeInstanceOf(CommittedOffsetsError);
      expect((verdict.fail as CommittedOffsetsError).apiId).toBe(apiId);
      expect(verdict.fail.message).toContain('group app');
    },
  );

  it.each([
    'UNSTABLE_OFFSET_COMMIT',
    'COORDINATOR_LOAD_IN_PROGRESS',
    'COORDINATOR_NOT_AVAILABLE',
    'NOT_COORDINATOR',
    'REBALANCE_IN_PROGRESS',
  ])('should retry when the broker answers %s', (apiId) => {
    expect(classifyOffsetFetchError(wrap(new ProtocolError(apiId)), 'app')).toEqual({ retry: apiId });
  });

  it('should retry when the broker is unreachable', () => {
    const verdict = classifyOffsetFetchError(wrap(new NetworkError('Connection closed')), 'app');
    expect('retry' in verdict).toBe(true);
  });

  it('should retry an error it does not know, within the deadline', () => {
    expect(classifyOffsetFetchError(new Error('something new'), 'app')).toEqual({ retry: 'something new' });
  });
});

describe('toOffsets', () => {
  const response = (groupError: number, partitionError: number) =>
    ({
      groups: [
        {
          groupId: 'app',
          errorCode: groupError,
          topics: [{ name: 't', partitions: [{ partitionIndex: 0, committedOffset: 7n, errorCode: partitionError }] }],
        },
      ],
    }) as unknown as Parameters<typeof toOffsets>[0];

  it('should map each partition to its committed offset when no error is set', () => {
    expect(toOffsets(response(0, 0), 'app')).toEqual(new Map([['t\u00000', 7n]]));
  });

  it('should fail on a group authorization code and retry on an unstable offset code', () => {
    const denied = toOffsets(response(30, 0), 'app');
    expect('fail' in denied && denied.fail).toBeInstanceOf(CommittedOffsetsError);
    expect(toOffsets(response(0, 88), 'app')).toEqual({ retry: 'partition t-0: UNSTABLE_OFFSET_COMMIT' });
  });
});

describe('fetchStableOffsets', () => {
  it('should fail on the first attempt when the group is not authorized', async () => {
    const { consumer, attempts } = failingConsumer(wrap(new ProtocolError('GROUP_AUTHORIZATION_FAILED')));
    await expect(fetchStableOffsets(consumer, topics, options)).rejects.toBeInstanceOf(KafkaAccessError);
    expect(attempts()).toBe(1);
  });

  it('should ask again until the deadline and then name the last reason when the coordinator keeps moving', async () => {
    const { consumer, attempts } = failingConsumer(wrap(new ProtocolError('NOT_COORDINATOR')));
    await expect(fetchStableOffsets(consumer, topics, options)).rejects.toThrow(
      /did not become stable within 300 ms \(NOT_COORDINATOR\)/,
    );
    expect(attempts()).toBeGreaterThan(1);
  });

  it('should retry, not crash the process, when the coordinator resets the connection during the request', async () => {
    // A hostile or restarting broker: it accepts, reads the OffsetFetch and answers with a TCP reset. The
    // connection is our own (not the client's pool), so its 'error' event has no listener but ours: an
    // instance once exited on exactly this ("Unhandled 'error' event", NetworkError ← read ECONNRESET)
    // when the broker restarted during a rebalance.
    const sockets = new Set<Socket>();
    let requests = 0;
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.once('data', () => {
        requests += 1;
        socket.resetAndDestroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.prependListener('uncaughtException', onUncaught);
    const consumer = {
      groupId: 'app',
      findGroupCoordinator: async () => 1,
      metadata: async () => ({ brokers: new Map([[1, { host: '127.0.0.1', port }]]) }),
    } as unknown as Consumer;
    try {
      await expect(fetchStableOffsets(consumer, topics, options)).rejects.toThrow(
        /did not become stable within 300 ms/,
      );
      // Give a late socket event the chance to surface before the listener goes.
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      process.removeListener('uncaughtException', onUncaught);
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
    expect(requests).toBeGreaterThan(1);
    expect(uncaught).toEqual([]);
  });
});
