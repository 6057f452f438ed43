// Waiting out broker outages (src/kafka/retry.ts): the backoff's bounds, the retry loop's three ways out
// (success, stop, an error that cannot heal), the low-rate outage log, and the classification of the
// client's real error trees (taken from a client talking to a closed port, not made up).
import { Consumer, MultipleErrors, NetworkError, ProtocolError } from '@platformatic/kafka';
import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createTransactionalProducer } from '../../../src/kafka/clients.ts';
import {
  backoffDelayMs,
  BROKER_BACKOFF,
  BrokerHealth,
  BrokerOutage,
  isBrokerUnavailable,
  permanentKafkaError,
  retryUntilStopped,
  StoppedError,
} from '../../../src/kafka/retry.ts';
import { KafkaAccessError } from '../../../src/kafka/security.ts';
import { FatalStreamsError } from '../../../src/runtime/errors.ts';

/** A logger whose lines are kept, to count what an outage logs. */
function capturingLogger(): { log: pino.Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const log = pino(
    { level: 'debug' },
    { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) },
  );
  return { log, lines };
}

const fast = { initialMs: 1, maxMs: 4, multiplier: 2, jitterRatio: 0.5 };

describe('backoffDelayMs', () => {
  it('should stay within the jittered exponential and never above maxMs when attempts grow without bound', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (attempt, r) => {
          const delay = backoffDelayMs(BROKER_BACKOFF, attempt, () => r);
          const full = Math.min(BROKER_BACKOFF.maxMs, BROKER_BACKOFF.initialMs * 2 ** Math.min(attempt, 30));
          expect(delay).toBeLessThanOrEqual(BROKER_BACKOFF.maxMs);
          expect(delay).toBeGreaterThanOrEqual(Math.floor(full * (1 - BROKER_BACKOFF.jitterRatio)));
          expect(Number.isInteger(delay)).toBe(true);
        },
      ),
    );
  });

  it('should reach maxMs with no jitter when the attempt number is large', () => {
    expect(backoffDelayMs(BROKER_BACKOFF, 50, () => 0)).toBe(5_000);
    expect(backoffDelayMs(BROKER_BACKOFF, 0, () => 0)).toBe(100);
  });
});

describe('retryUntilStopped', () => {
  it('should retry a failing step until it succeeds when the errors are an unavailable broker', async () => {
    const outage = new BrokerOutage('test');
    let calls = 0;
    const result = await retryUntilStopped(
      async () => {
        calls++;
        if (calls < 25) throw new NetworkError('Connection closed');
        return 'joined';
      },
      { step: 'joinGroup', outage, backoff: fast },
    );
    expect(result).toBe('joined');
    expect(calls).toBe(25);
    expect(outage.retriesTotal).toBe(24);
    expect(outage.unavailable).toBeUndefined();
  });

  it('should end with StoppedError when the signal aborts during the wait', async () => {
    const outage = new BrokerOutage('test');
    const stop = new AbortController();
    const waiting = retryUntilStopped(
      async () => {
        throw new NetworkError('Connection closed');
      },
      { step: 'metadata', outage, signal: stop.signal, backoff: { ...fast, initialMs: 60_000, maxMs: 60_000 } },
    );
    setTimeout(() => stop.abort(), 20);
    await expect(waiting).rejects.toBeInstanceOf(StoppedError);
    expect(outage.unavailable?.step).toBe('metadata');
  });

  it('should throw the permanent error at once when waiting cannot heal it', async () => {
    const outage = new BrokerOutage('test');
    let calls = 0;
    const denied = new MultipleErrors('joinGroup failed 1 times.', [new ProtocolError('GROUP_AUTHORIZATION_FAILED')]);
    const waiting = retryUntilStopped(
      async () => {
        calls++;
        throw denied;
      },
      { step: 'joinGroup', outage, backoff: fast },
    );
    await expect(waiting).rejects.toMatchObject({ code: 'kafka_not_authorized' });
    expect(calls).toBe(1);
    expect(outage.retriesTotal).toBe(0);
  });
});

describe('BrokerOutage', () => {
  it('should log the first failure, then at most once per logEveryMs, then the recovery when an outage lasts', () => {
    const { log, lines } = capturingLogger();
    let now = 1_000_000;
    const outage = new BrokerOutage('streams', { log, logEveryMs: 30_000, nowMs: () => now });
    for (let i = 0; i <= 600; i++) {
      outage.failed('fetch', new NetworkError('Connection closed'), 100);
      now += 100; // 601 failures over 60 s
    }
    expect(outage.unavailableSeconds()).toBeCloseTo(60.1, 1);
    expect(outage.unavailable).toMatchObject({ component: 'streams', retries: 601, step: 'fetch', sinceMs: 1_000_000 });
    outage.recovered();
    const messages = lines.map((l) => l.msg);
    expect(messages.filter((m) => m.startsWith('broker unavailable'))).toHaveLength(1);
    expect(messages.filter((m) => m.startsWith('broker still unavailable'))).toHaveLength(2);
    expect(messages.filter((m) => m === 'broker answers again')).toHaveLength(1);
    expect(outage.unavailableSeconds()).toBe(0);
    expect(outage.outagesTotal).toBe(1);
  });

  it('should list only the components waiting for the broker when several share one BrokerHealth', () => {
    const health = new BrokerHealth();
    health.outage('sink').failed('sink fetch', new NetworkError('Connection closed'), 100);
    health.outage('streams');
    expect(health.unavailable().map((o) => o.component)).toEqual(['sink']);
    expect(health.outage('sink')).toBe(health.outage('sink'));
    health.outage('sink').recovered();
    expect(health.unavailable()).toEqual([]);
  });
});

describe('isBrokerUnavailable and permanentKafkaError', () => {
  it('should call a JoinGroup against a closed port unavailable and not permanent when the client gives up', async () => {
    const consumer = new Consumer({
      bootstrapBrokers: ['127.0.0.1:1'],
      clientId: 'retry-unit',
      groupId: 'retry-unit',
      retries: 1,
      retryDelay: 10,
      connectTimeout: 1_000,
    });
    try {
      const error = await (consumer.joinGroup({}) as Promise<unknown>).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(Error);
      expect(isBrokerUnavailable(error)).toBe(true);
      expect(permanentKafkaError(error)).toBeUndefined();
    } finally {
      await consumer.close(true);
    }
  });

  it('should call the issue 17 error (joinGroup failed 4 times. Connection closed) unavailable and not permanent', () => {
    const closed = new NetworkError('Connection closed');
    const error = new MultipleErrors(
      'joinGroup failed 4 times. Connection closed findGroupCoordinator failed 4 times.',
      [closed, new MultipleErrors('findGroupCoordinator failed 4 times.', [closed])],
    );
    expect(isBrokerUnavailable(error)).toBe(true);
    expect(permanentKafkaError(error)).toBeUndefined();
  });

  it('should stop on authorization, fencing, SASL, missing topics and FatalStreamsError when they are in the error tree', () => {
    const wrap = (inner: Error) =>
      new MultipleErrors('metadata failed 2 times.', [new NetworkError('Connection closed'), inner]);
    expect(permanentKafkaError(wrap(new ProtocolError('TOPIC_AUTHORIZATION_FAILED')))).toBeInstanceOf(KafkaAccessError);
    expect(permanentKafkaError(wrap(new ProtocolError('SASL_AUTHENTICATION_FAILED')))).toMatchObject({
      code: 'kafka_connection_failed',
    });
    expect(permanentKafkaError(wrap(new ProtocolError('PRODUCER_FENCED')))).toMatchObject({ code: 'producer_fenced' });
    expect(permanentKafkaError(wrap(new ProtocolError('INVALID_PRODUCER_EPOCH')))).toMatchObject({
      code: 'producer_fenced',
    });
    // Counted as fencing elsewhere, but what the operator must fix is an ACL.
    expect(permanentKafkaError(wrap(new ProtocolError('TRANSACTIONAL_ID_AUTHORIZATION_FAILED')))).toMatchObject({
      code: 'kafka_not_authorized',
    });
    expect(permanentKafkaError(new Error('Unknown topic bank-input.'))).toMatchObject({ code: 'topics_missing' });
    const notCopartitioned = new FatalStreamsError('topics_not_copartitioned', 'partition counts differ');
    expect(permanentKafkaError(notCopartitioned)).toBe(notCopartitioned);
  });

  it('should treat coordinator and leader moves as unavailable and unrelated bugs as neither when classifying', () => {
    for (const id of [
      'COORDINATOR_LOAD_IN_PROGRESS',
      'COORDINATOR_NOT_AVAILABLE',
      'NOT_COORDINATOR',
      'LEADER_NOT_AVAILABLE',
      'NOT_LEADER_OR_FOLLOWER',
      'REQUEST_TIMED_OUT',
      'CONCURRENT_TRANSACTIONS',
    ]) {
      expect(isBrokerUnavailable(new ProtocolError(id)), id).toBe(true);
      expect(permanentKafkaError(new ProtocolError(id)), id).toBeUndefined();
    }
    expect(isBrokerUnavailable(new TypeError('cannot read properties of undefined'))).toBe(false);
    expect(isBrokerUnavailable(new ProtocolError('ILLEGAL_GENERATION'))).toBe(false);
  });
});

describe('BankstreamProducer.beginTransaction when the broker does not answer', () => {
  it('should fail every attempt with the broker error, not "already an active transaction", so that a retry can succeed later', async () => {
    const producer = createTransactionalProducer({
      bootstrapBrokers: ['127.0.0.1:1'],
      clientId: 'retry-unit-producer',
      transactionalId: 'retry-unit-txn',
      transactionTimeoutMs: 1_000,
      requestTimeoutMs: 5_000,
      connectTimeoutMs: 1_000,
      // The client turns retries <= 1 of an idempotent producer into "retry for ever".
      retries: 2,
      retryDelayMs: 10,
    });
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        const error = await producer.beginTransaction().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(String((error as Error).message)).not.toMatch(/already an active transaction/);
        expect(isBrokerUnavailable(error)).toBe(true);
        expect(producer.transaction).toBeUndefined();
      }
    } finally {
      await producer.close(true);
    }
  });
});
