// Correct read_committed filtering for @platformatic/kafka 2.12.
//
// THE BUG (node_modules/@platformatic/kafka/dist/clients/consumer/consumer.js, #filterUncommittedMessages)
// The client asks the broker for READ_COMMITTED (so nothing above the last stable offset is ever
// returned) and then filters aborted data itself, like every Kafka client must. Its filter keeps
// ONE range per producer id per response (a Map keyed by producerId, overwritten), ended by the
// LAST abort marker of that producer in the response, and delivers a range whose marker is not in
// the response ("open range ... ignore for safety"). So it delivers aborted records when
//   1. one producer (one transactional.id; a restarted one keeps its producer id) aborted twice
//      in the fetched range: only the last aborted transaction is dropped;
//   2. the abort marker is not in the same response. That happens with a response cut by
//      maxBytes, and also without it: the broker answers a read_committed fetch up to the LSO,
//      which is the first offset of the OLDEST OPEN transaction of ANY producer, while the
//      aborted-transaction list holds every aborted transaction overlapping the returned range.
//      Producer A writes, producer B opens a transaction, A aborts: A's marker lies above the LSO
//      (B is still open), A's records lie below it, and A's transaction is listed. So "every
//      listed aborted transaction has its marker at or before the LSO" is false; the integration
//      tests show both cases against the real broker.
//
// THE RULE (Java client: FetchCollector / CompletedFetch#nextFetchedRecord)
// Per partition of one fetch response: sort the aborted transactions by first offset; walk the
// batches in offset order; before looking at a batch that has a producer id, mark as aborted every
// producer whose aborted transaction starts at or before the batch's last offset; an ABORT control
// batch of a producer unmarks it; a TRANSACTIONAL data batch of a marked producer is aborted.
// A producer marked and never unmarked in this response stays aborted up to the end of the response.
//
// STATE ACROSS RESPONSES: none is needed, and none is kept (the Java client keeps none either).
// The broker lists, in every read_committed response, each aborted transaction with
// lastOffset >= fetchOffset and firstOffset < end of the returned data (LocalLog /
// TransactionIndex#collectAbortedTxns), so a transaction that began before the fetch offset is
// listed again (with its old firstOffset) in the next response. State carried across responses
// would only add risk: after a seek, a rebalance or a restore from an older offset it would be
// stale. The integration test "should list an aborted transaction again when a fetch starts in
// its middle" checks that broker behaviour.
//
// HOW IT IS PLUGGED IN: `ReadCommittedConsumer` subclasses the client's Consumer and overrides its
// PUBLIC `fetch()`. Everything that reads through the client goes through it: MessagesStream
// (consume()) calls `consumer.fetch(...)` for every fetch, and so does any direct caller.
//   - The private #filterUncommittedMessages cannot be overridden, and it runs before fetch()
//     returns. It is NOT harmless: it can also drop COMMITTED batches. Its range for a producer runs
//     from the producer's listed aborted transaction to the producer's LAST abort marker in the
//     response, and the broker lists only aborted transactions that have data in the partition: a
//     later transaction that had the partition added but wrote nothing there (a refused record, a
//     producer killed between AddPartitionsToTxn and Produce, an abort after a restart) leaves an
//     abort marker with no listed transaction, and everything of that producer in between, committed
//     or not, is dropped (test/integration/kafka/abort-marker-without-data.test.ts). So the engine,
//     restore, standbys, the sink and the API's tails do not read through Consumer.fetch at all:
//     src/kafka/fetcher.ts sends Fetch through the client's protocol API and applies only the rule
//     above. This class stays for consume() streams (tests and tools), which remain exposed to that
//     loss; do not use it where a record must not be missed.
//   - READ_UNCOMMITTED plus our own filter is not an option: the broker would then return data
//     above the LSO (open transactions), which no client-side filter can judge.
//   - Aborted batches are not removed but replaced by a copy with `records: []`: the
//     MessagesStream advances its fetch offset from the LAST batch of each partition in the
//     response, so removing a trailing aborted batch (an open range at the end of a response)
//     would make it fetch the same aborted batch forever.
//   - A patch of node_modules (patch-package) would be lost on reinstall unless the project adds
//     a dependency and a postinstall step; a subclass keeps the fix in our code and fails loudly
//     (a type error) if the client's public fetch signature changes.
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
