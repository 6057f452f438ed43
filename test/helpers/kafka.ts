// Test helpers on the real broker: topic lifecycle, producing, and reading with read_committed through
// src/kafka's reader (createReader) (whose filter is correct, unlike the client's; see docs/notes/fetcher.md).
import { randomUUID } from 'node:crypto';
import { Admin, type MessageToProduce, Producer } from '@platformatic/kafka';
import type { KafkaSecurityOptions } from '../../src/kafka/clients.ts';
import type { FetchedRecord } from '../../src/kafka/fetcher.ts';
import { createReader } from '../../src/kafka/reader.ts';

export const BROKERS = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export async function createTopics(
  topics: Array<{ name: string; partitions: number; compact?: boolean }>,
): Promise<void> {
  const admin = new Admin({ clientId: 'test-admin', bootstrapBrokers: BROKERS });
  try {
    for (const t of topics) {
      await admin.createTopics({
        topics: [t.name],
        partitions: t.partitions,
        replicas: 1,
        configs: t.compact ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
      });
    }
  } finally {
    await admin.close();
  }
}

export async function deleteTopics(topics: string[]): Promise<void> {
  const admin = new Admin({ clientId: 'test-admin', bootstrapBrokers: BROKERS });
  try {
    await admin.deleteTopics({ topics }).catch(() => undefined);
  } finally {
    await admin.close();
  }
}

/** Produces messages (idempotent, acks=all), in order, outside any transaction. */
export async function produce(messages: MessageToProduce[]): Promise<void> {
  const producer = new Producer({ clientId: 'test-producer', bootstrapBrokers: BROKERS, idempotent: true, acks: -1 });
  try {
    for (let i = 0; i < messages.length; i += 500) await producer.send({ messages: messages.slice(i, i + 500) });
  } finally {
    await producer.close();
  }
}

/** Every committed record of a topic, read_committed, from the beginning to the last stable offset. */
export async function readCommitted(
  topic: string,
  partitions: number,
  brokers: string[] = BROKERS,
  security: KafkaSecurityOptions = {},
): Promise<FetchedRecord[]> {
  const { consumer, fetcher } = createReader({
    clientId: 'test-reader',
    groupId: uniqueName('reader'),
    bootstrapBrokers: brokers,
    security,
    fetch: { maxWaitMs: 100, minBytes: 1, maxBytes: 8 * 1024 * 1024, partitionMaxBytes: 4 * 1024 * 1024 },
  });
  try {
    const ends = await consumer.listOffsets({ topics: [topic], isolationLevel: 1 });
    const end = ends.get(topic) ?? [];
    const positions = Array.from({ length: partitions }, (_, partition) => ({ topic, partition, offset: 0n }));
    const out: FetchedRecord[] = [];
    for (let round = 0; round < 10_000; round++) {
      const active = positions.filter((p) => p.offset < (end[p.partition] ?? 0n));
      if (active.length === 0) break;
      for (const part of await fetcher.fetch(active)) {
        const pos = positions[part.partition]!;
        for (const r of part.records) if (r.offset < (end[part.partition] ?? 0n)) out.push(r);
        pos.offset = part.nextOffset;
      }
    }
    return out;
  } finally {
    await consumer.close();
  }
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
