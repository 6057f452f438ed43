// Java-compatible key partitioning (what the Java client's and KafkaJS's default partitioners do):
//
//   partition = (murmur2(keyBytes) & 0x7fffffff) % numPartitions
//
// @platformatic/kafka's *default* partitioner uses `murmur2(key) >>> 0` (unsigned), which sends
// about half of all keys to a different partition than Java/KafkaJS would. The library also
// exports `compatibilityPartitioner` (the `& 0x7fffffff` variant) and its `murmur2` (a port of
// org.apache.kafka.common.utils.Utils#murmur2); we use both rather than carrying our own hash.
// test/unit/kafka/partitioner.test.ts checks them against KafkaJS's DefaultPartitioner.
import { compatibilityPartitioner, murmur2, type Partitioner } from '@platformatic/kafka'

const POSITIVE_MASK = 0x7fffffff

function assertPartitionCount(partitions: number): void {
  if (!Number.isSafeInteger(partitions) || partitions < 1) {
    throw new RangeError(`partition count must be a positive integer, got ${String(partitions)}`)
  }
}

/** Java-compatible murmur2 hash of a key, made positive (`murmur2(key) & 0x7fffffff`). Strings are UTF-8 encoded. */
export function positiveMurmur2(key: Buffer | string): number {
  return murmur2(typeof key === 'string' ? Buffer.from(key, 'utf8') : key) & POSITIVE_MASK
}

/** The partition the Java client / KafkaJS default partitioner picks for `key` among `partitions` partitions. */
export function partitionForKey(key: Buffer | string, partitions: number): number {
  assertPartitionCount(partitions)
  return positiveMurmur2(key) % partitions
}

/**
 * The Java-compatible partitioner to pass as the `partitioner` option of a @platformatic/kafka Producer
 * (Buffer keys: the key serializer runs before the partitioner).
 *
 * The producer applies `% partitionsCount` itself after calling it. Messages with an explicit
 * `partition` never reach it. A message without a key goes to partition 0 (library behaviour;
 * bankstream writes are always keyed).
 */
export const javaCompatiblePartitioner: Partitioner<Buffer, Buffer, Buffer, Buffer> = compatibilityPartitioner
