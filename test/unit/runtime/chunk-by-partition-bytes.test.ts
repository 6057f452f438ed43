import type { MessageToProduce } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { chunkByPartitionBytes } from '../../../src/runtime/commit-messages.ts';

const message = (topic: string, partition: number, valueBytes: number, id: number): MessageToProduce => ({
  topic,
  partition,
  key: Buffer.from(String(id)),
  value: Buffer.alloc(valueBytes),
});

/** Bytes per topic-partition of a chunk, counted as the splitter counts them (32 bytes of overhead a record). */
function bytesPerPartition(chunk: MessageToProduce[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of chunk) {
    const key = `${m.topic}/${m.partition}`;
    out.set(key, (out.get(key) ?? 0) + 32 + (m.key?.length ?? 0) + (m.value?.length ?? 0));
  }
  return out;
}

describe('chunkByPartitionBytes', () => {
  it('should keep every message in order and one chunk when no partition reaches the limit', () => {
    const messages = [message('a', 0, 100, 1), message('b', 0, 100, 2), message('a', 1, 100, 3)];
    expect(chunkByPartitionBytes(messages, 1000)).toEqual([messages]);
  });

  it('should split when one partition of a topic would pass the limit, whatever the other partitions and topics hold', () => {
    const messages: MessageToProduce[] = [];
    for (let i = 0; i < 200; i++) messages.push(message(i % 3 === 0 ? 'a' : 'b', i % 4, 40 + (i % 7) * 10, i));
    const chunks = chunkByPartitionBytes(messages, 1000);
    expect(chunks.flat()).toEqual(messages);
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks)
      for (const bytes of bytesPerPartition(chunk).values()) expect(bytes).toBeLessThanOrEqual(1000);
    // A chunk ends only because the next message would have passed the limit for its partition.
    for (let i = 0; i + 1 < chunks.length; i++) {
      const next = chunks[i + 1]![0]!;
      const used = bytesPerPartition(chunks[i]!).get(`${next.topic}/${next.partition}`) ?? 0;
      expect(used + 32 + next.key!.length + next.value!.length).toBeGreaterThan(1000);
    }
  });

  it('should put a message larger than the limit in a chunk of its own', () => {
    const messages = [message('a', 0, 10, 1), message('a', 0, 5000, 2), message('a', 0, 10, 3)];
    expect(chunkByPartitionBytes(messages, 1000)).toEqual([[messages[0]], [messages[1]], [messages[2]]]);
  });
});
