// read_committed filtering done right for @platformatic/kafka 2.12, whose own filter delivers aborted
// records (two aborts of one producer in a fetch, an abort marker above the LSO) and can drop committed
// ones. The rule here is the Java client's (FetchCollector): per partition of one response, sort the
// aborted transactions by first offset and walk the batches in order; no state across responses.
// ReadCommittedConsumer applies it to consume() streams (tests, tools); the engine, restore, the sink and
// the tails read through the Fetcher (fetcher.ts), which applies only this rule. The whole story, with the broker
// behaviour the tests check: docs/notes/read-committed.md.
import {
  Consumer,
  FetchIsolationLevels,
  IS_CONTROL,
  IS_TRANSACTIONAL,
  kOptions,
  type CallbackWithPromise,
  type ConsumerOptions,
  type FetchOptions,
  type RecordsBatch,
  type fetchV17,
} from '@platformatic/kafka';

export type FetchResponse = fetchV17.FetchResponse;
export type FetchResponsePartition = fetchV17.FetchResponsePartition;
export type AbortedTransaction = fetchV17.FetchResponsePartitionAbortedTransaction;

/** Control record key: version (int16) then type (int16); type 0 = ABORT, 1 = COMMIT. */
const CONTROL_TYPE_ABORT = 0;
const NO_PRODUCER_ID = -1n;

export interface AbortedFilterStats {
  /** Transactional data batches recognised as aborted (their records were dropped). */
  abortedBatches: number;
  /** Records dropped because they belong to aborted transactions. */
  abortedRecords: number;
}

export function isControlBatch(batch: RecordsBatch): boolean {
  return (batch.attributes & IS_CONTROL) !== 0;
}

export function isTransactionalBatch(batch: RecordsBatch): boolean {
  return (batch.attributes & IS_TRANSACTIONAL) !== 0;
}

/** True for a control batch whose (single) control record is an ABORT marker. */
export function isAbortMarkerBatch(batch: RecordsBatch): boolean {
  if (!isControlBatch(batch)) {
    return false;
  }
  const key = batch.records[0]?.key;
  return key !== null && key !== undefined && key.length >= 4 && key.readInt16BE(2) === CONTROL_TYPE_ABORT;
}

export function batchLastOffset(batch: RecordsBatch): bigint {
  return batch.firstOffset + BigInt(batch.lastOffsetDelta);
}

function compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Drops the records of aborted transactions from ONE partition of ONE read_committed fetch
 * response, in place, following the Java client's rule (see the file header).
 *
 * Aborted batches stay in `partition.records` as copies with `records: []` so that offset
 * tracking (which looks at the last batch of the partition) still advances past them. Control
 * batches are kept (the MessagesStream skips them itself). Returns what was dropped.
 */
export function filterAbortedBatches(partition: FetchResponsePartition): AbortedFilterStats {
  const stats: AbortedFilterStats = { abortedBatches: 0, abortedRecords: 0 };
  const batches = partition.records;
  if (!batches || batches.length === 0) {
    return stats;
  }

  const aborted = [...(partition.abortedTransactions ?? [])].sort((a, b) =>
    compareBigint(a.firstOffset, b.firstOffset),
  );
  if (aborted.length === 0) {
    return stats;
  }

  let nextAborted = 0;
  const abortedProducers = new Set<bigint>();
  const filtered: RecordsBatch[] = new Array(batches.length);

  for (let i = 0; i < batches.length; i++) {
    const batch = batches[i]!;
    filtered[i] = batch;
    if (batch.producerId === NO_PRODUCER_ID) {
      continue;
    }

    // consumeAbortedTransactionsUpTo(batch.lastOffset())
    const lastOffset = batchLastOffset(batch);
    while (nextAborted < aborted.length && aborted[nextAborted]!.firstOffset <= lastOffset) {
      abortedProducers.add(aborted[nextAborted]!.producerId);
      nextAborted++;
    }

    if (isAbortMarkerBatch(batch)) {
      abortedProducers.delete(batch.producerId);
    } else if (!isControlBatch(batch) && isTransactionalBatch(batch) && abortedProducers.has(batch.producerId)) {
      stats.abortedBatches++;
      stats.abortedRecords += batch.records.length;
      filtered[i] = { ...batch, records: [] };
    }
  }

  partition.records = filtered;
  return stats;
}

/** Applies `filterAbortedBatches` to every partition of a read_committed fetch response, in place. */
export function filterAbortedFromFetchResponse(response: FetchResponse): AbortedFilterStats {
  const total: AbortedFilterStats = { abortedBatches: 0, abortedRecords: 0 };
  for (const topic of response.responses) {
    for (const partition of topic.partitions) {
      const stats = filterAbortedBatches(partition);
      total.abortedBatches += stats.abortedBatches;
      total.abortedRecords += stats.abortedRecords;
    }
  }
  return total;
}

/**
 * A @platformatic/kafka Consumer whose read_committed fetches (and therefore `consume()` streams)
 * never deliver records of aborted transactions. Drop-in replacement for `Consumer`.
 */
export class ReadCommittedConsumer<
  Key = Buffer,
  Value = Buffer,
  HeaderKey = Buffer,
  HeaderValue = Buffer,
> extends Consumer<Key, Value, HeaderKey, HeaderValue> {
  /** Records of aborted transactions this consumer has dropped (beyond what the client itself dropped). */
  abortedRecordsFiltered: number;
  /** Aborted data batches this consumer has emptied. */
  abortedBatchesFiltered: number;

  constructor(options: ConsumerOptions<Key, Value, HeaderKey, HeaderValue>) {
    super(options);
    this.abortedRecordsFiltered = 0;
    this.abortedBatchesFiltered = 0;
  }

  override fetch(
    options: FetchOptions<Key, Value, HeaderKey, HeaderValue>,
    callback: CallbackWithPromise<FetchResponse>,
  ): void;
  override fetch(options: FetchOptions<Key, Value, HeaderKey, HeaderValue>): Promise<FetchResponse>;
  override fetch(
    options: FetchOptions<Key, Value, HeaderKey, HeaderValue>,
    callback?: CallbackWithPromise<FetchResponse>,
  ): undefined | Promise<FetchResponse> {
    // Same resolution as the client's private #fetch.
    const readCommitted =
      (options.isolationLevel ?? this[kOptions].isolationLevel) === FetchIsolationLevels.READ_COMMITTED;

    const filterThen = (done: (error: Error | null, response?: FetchResponse) => void) => {
      return (error: Error | null, response?: FetchResponse) => {
        if (!error && response && readCommitted) {
          try {
            const stats = filterAbortedFromFetchResponse(response);
            this.abortedBatchesFiltered += stats.abortedBatches;
            this.abortedRecordsFiltered += stats.abortedRecords;
          } catch (filterError) {
            done(filterError as Error);
            return;
          }
        }
        done(error, response);
      };
    };

    if (callback) {
      super.fetch(options, filterThen(callback));
      return;
    }
    return new Promise<FetchResponse>((resolve, reject) => {
      super.fetch(
        options,
        filterThen((error, response) => {
          if (error) {
            reject(error);
          } else {
            resolve(response!);
          }
        }),
      );
    });
  }
}
