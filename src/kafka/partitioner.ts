// Java-compatible key partitioning (what the Java client's and KafkaJS's default partitioners do):
//
//   partition = (murmur2(keyBytes) & 0x7fffffff) % numPartitions
//
// @platformatic/kafka's *default* partitioner uses `murmur2(key) >>> 0` (unsigned), which sends
// about half of all keys to a different partition than Java/KafkaJS would. The library also
// exports `compatibilityPartitioner` (the `& 0x7fffffff` variant) and its `murmur2` (a port of
// org.apache.kafka.common.utils.Utils#murmur2). Its murmur2 computes with BigInt, which showed up as
// ~6 % of the engine's CPU (every record's key is hashed to check its partition), so the engine's path
// uses `murmur2Int` below, the same algorithm in 32-bit integer arithmetic (Math.imul); the unit tests
// check it against the library's murmur2, Java's test vectors and KafkaJS's DefaultPartitioner.
import { compatibilityPartitioner, type Partitioner } from '@platformatic/kafka';

const POSITIVE_MASK = 0x7fffffff;

function assertPartitionCount(partitions: number): void {
  if (!Number.isSafeInteger(partitions) || partitions < 1) {
    throw new RangeError(`partition count must be a positive integer, got ${String(partitions)}`);
  }
}

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** org.apache.kafka.common.utils.Utils#murmur2 in 32-bit integer arithmetic: a signed 32-bit result, as Java's. */
export function murmur2Int(data: Buffer): number {
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const blocks = length >> 2;
  for (let i = 0; i < blocks; i++) {
    const o = i << 2;
    let k = data[o]! | (data[o + 1]! << 8) | (data[o + 2]! << 16) | (data[o + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // The tail bytes, as Java's fall-through switch: 3 left → bytes 2, 1, 0; 2 → 1, 0; 1 → 0.
  const tail = blocks << 2;
  const left = length & 3;
  if (left === 3) h ^= data[tail + 2]! << 16;
  if (left >= 2) h ^= data[tail + 1]! << 8;
  if (left >= 1) {
    h ^= data[tail]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** Java-compatible murmur2 hash of a key, made positive (`murmur2(key) & 0x7fffffff`). Strings are UTF-8 encoded. */
export function positiveMurmur2(key: Buffer | string): number {
  return murmur2Int(typeof key === 'string' ? Buffer.from(key, 'utf8') : key) & POSITIVE_MASK;
}

/** The partition the Java client / KafkaJS default partitioner picks for `key` among `partitions` partitions. */
export function partitionForKey(key: Buffer | string, partitions: number): number {
  assertPartitionCount(partitions);
  return positiveMurmur2(key) % partitions;
}

/**
 * The Java-compatible partitioner to pass as the `partitioner` option of a @platformatic/kafka Producer
 * (Buffer keys: the key serializer runs before the partitioner).
 *
 * The producer applies `% partitionsCount` itself after calling it. Messages with an explicit
 * `partition` never reach it. A message without a key goes to partition 0 (library behaviour;
 * bankstream writes are always keyed).
 */
export const javaCompatiblePartitioner: Partitioner<Buffer, Buffer, Buffer, Buffer> = compatibilityPartitioner;
