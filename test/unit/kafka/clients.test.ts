import { afterEach, describe, expect, it } from 'vitest';
import { FetchIsolationLevels, kOptions } from '@platformatic/kafka';
import {
  baseClientOptions,
  CONCURRENT_TRANSACTIONS_DELAYS_MS,
  createAdmin,
  createIdempotentProducer,
  createReadCommittedConsumer,
  createTransactionalProducer,
  transactionalRetryDelay,
} from '../../../src/kafka/clients.ts';
import { javaCompatiblePartitioner } from '../../../src/kafka/partitioner.ts';
import { BankstreamProducer } from '../../../src/kafka/producer.ts';
import { ReadCommittedConsumer } from '../../../src/kafka/read-committed.ts';

const base = { bootstrapBrokers: ['127.0.0.1:1'], clientId: 'unit-test' };
const toClose: Array<{ close(): Promise<void> }> = [];

afterEach(async () => {
  for (const client of toClose.splice(0)) {
    await client.close();
  }
});

describe('baseClientOptions', () => {
  it('should set every connection option explicitly when only brokers and client id are given', () => {
    expect(baseClientOptions(base)).toEqual({
      bootstrapBrokers: ['127.0.0.1:1'],
      clientId: 'unit-test',
      connectTimeout: 5_000,
      requestTimeout: 30_000,
      retries: 3,
      retryDelay: 250,
      metadataMaxAge: 10_000,
      autocreateTopics: false,
    });
  });

  it('should pass TLS and SASL options through when security options are given', () => {
    const sasl = { mechanism: 'SCRAM-SHA-512' as const, username: 'u', password: 'p' };
    const tls = { rejectUnauthorized: true };
    const options = baseClientOptions({ ...base, security: { tls, sasl, tlsServerName: 'kafka.local' } });
    expect(options.sasl).toBe(sasl);
    expect(options.tls).toBe(tls);
    expect(options.tlsServerName).toBe('kafka.local');
  });

  it('should throw when no bootstrap broker is given', () => {
    expect(() => baseClientOptions({ ...base, bootstrapBrokers: [] })).toThrow(/bootstrapBrokers/);
  });

  it('should throw when a timeout is negative', () => {
    expect(() => baseClientOptions({ ...base, requestTimeoutMs: -1 })).toThrow(RangeError);
  });
});

describe('client factories', () => {
  it('should build an idempotent transactional producer with the Java partitioner when createTransactionalProducer is called', () => {
    const producer = createTransactionalProducer({
      ...base,
      transactionalId: 'bankstream-1',
      transactionTimeoutMs: 12_000,
    });
    toClose.push(producer);
    expect(producer).toBeInstanceOf(BankstreamProducer);
    const options = producer[kOptions];
    expect(options.idempotent).toBe(true);
    expect(options.transactionalId).toBe('bankstream-1');
    expect(options.partitioner).toBe(javaCompatiblePartitioner);
    expect(options.timeout).toBe(12_000);
    expect(options.acks).toBe(-1);
    expect(options.maxInflights).toBe(1);
    expect(options.autocreateTopics).toBe(false);
  });

  it('should retry CONCURRENT_TRANSACTIONS after the short delays first, and every other error after its retry delay', () => {
    const producer = createTransactionalProducer({ ...base, transactionalId: 'bankstream-2', retryDelayMs: 20 });
    toClose.push(producer);
    const delay = producer[kOptions].retryDelay;
    expect(typeof delay).toBe('function');
    const getter = delay as Exclude<typeof delay, number | undefined>;
    // The coordinator's answer as the client builds it: a ProtocolError inside a ResponseError.
    const concurrent = Object.assign(new Error('AddPartitionsToTxn failed'), {
      errors: [Object.assign(new Error('concurrent operation'), { apiId: 'CONCURRENT_TRANSACTIONS' })],
    });
    const other = Object.assign(new Error('Produce failed'), {
      errors: [Object.assign(new Error('not leader'), { apiId: 'NOT_LEADER_OR_FOLLOWER' })],
    });
    const attempts = Array.from({ length: 9 }, (_, i) => i + 1);
    expect(attempts.map((a) => getter(producer, 'addPartitions', a, 100, concurrent))).toEqual([
      ...CONCURRENT_TRANSACTIONS_DELAYS_MS,
      20,
      20,
      20,
    ]);
    expect(attempts.map((a) => getter(producer, 'send', a, 100, other))).toEqual(attempts.map(() => 20));
    // A client delay below a scheduled step is never lengthened by it.
    expect(transactionalRetryDelay(2)(producer, 'addPartitions', 5, 100, concurrent)).toBe(2);
  });

  it('should throw when the transaction timeout is at or above the request timeout', () => {
    expect(() => createTransactionalProducer({ ...base, transactionalId: 'x', transactionTimeoutMs: 30_000 })).toThrow(
      RangeError,
    );
  });

  it('should build an idempotent producer with the Java partitioner when createIdempotentProducer is called', () => {
    const producer = createIdempotentProducer(base);
    toClose.push(producer);
    expect(producer[kOptions].idempotent).toBe(true);
    expect(producer[kOptions].partitioner).toBe(javaCompatiblePartitioner);
  });

  it('should build a read_committed consumer without autocommit when createReadCommittedConsumer is called', () => {
    const consumer = createReadCommittedConsumer({ ...base, groupId: 'bankstream', groupInstanceId: 'i-1' });
    toClose.push(consumer);
    expect(consumer).toBeInstanceOf(ReadCommittedConsumer);
    const options = consumer[kOptions];
    expect(options.isolationLevel).toBe(FetchIsolationLevels.READ_COMMITTED);
    expect(options.autocommit).toBe(false);
    expect(consumer.groupInstanceId).toBe('i-1');
    expect(options.maxWaitTime).toBe(500);
  });

  it('should throw when the rebalance timeout is below the session timeout', () => {
    expect(() =>
      createReadCommittedConsumer({ ...base, groupId: 'g', sessionTimeoutMs: 30_000, rebalanceTimeoutMs: 10_000 }),
    ).toThrow(RangeError);
  });

  it('should build an admin client when createAdmin is called', () => {
    const admin = createAdmin(base);
    toClose.push(admin);
    expect(admin[kOptions].clientId).toBe('unit-test');
  });
});
