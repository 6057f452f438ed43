// A @platformatic/kafka Producer with the transactional traps of 2.12 worked around.
// Every fix below was found by reading node_modules/@platformatic/kafka/dist/clients/producer/*.js
// and is shown against the real broker in test/integration/kafka/.
//
// 1. InitProducerId (restart of a transactional.id). The client sends
//    `options.producerId ?? this[kOptions].producerId ?? 0n` / epoch `?? 0`, never -1/-1. The
//    coordinator reads (0, 0) as "I am producer 0 at epoch 0" (KIP-360), so a restarted instance
//    whose transactional.id already has a producer id other than 0 gets PRODUCER_FENCED and can
//    never start again. We send (-1, -1) on the first init (fresh start: bump the epoch, abort
//    what the previous incarnation left open, fence it) and the producer id/epoch we last got on
//    any re-init (so a zombie that was fenced by a newer instance is told PRODUCER_FENCED instead
//    of fencing the newer one back).
//
// 2. AddPartitionsToTxn version. The client picks the highest version both sides support: v5 on
//    Kafka >= 3.6. v4+ is the broker-to-broker form (KIP-890 verification: batched transactions,
//    `verify_only`); Kafka authorizes it with CLUSTER_ACTION on the cluster, so with ACLs on, a
//    normal principal is refused. The Java client sends at most v3 for its own transaction. v3
//    has the same request/response shape in this client (its createRequest reads
//    `transactions[0]`), so we hand out the v3 API instead.
//
// 3. Concurrent calls on one transaction are merged. Transaction#addPartitions (run by every
//    `transaction.send`), #addOffset and #addConsumer go through `kPerformDeduplicated` with a
//    fixed key: a call made while another is in flight gets the first call's result and its own
//    request is never sent. Concurrent sends to new partitions then fail with
//    TRANSACTION_ABORTABLE (the partition was never added) while the other partitions commit:
//    a partial transaction. Concurrent addOffset calls lose offsets. We serialise these three
//    operations per transaction (order preserved; sends still pipeline their produce requests).
//
// 4. Empty transactions. beginTransaction() sends nothing to the broker; the transaction only
//    exists there after AddPartitionsToTxn / AddOffsetsToTxn. The client still sends EndTxn for a
//    transaction with no records and no offsets, and the coordinator answers INVALID_TXN_STATE.
//    Like the Java client, we complete such a transaction locally (Transaction#cancel).
//
// 5. Commit after a failure. The client lets you commit a transaction after one of its sends or
//    offset additions failed (the broker accepts the EndTxn: what did get in is committed). The
//    Java client refuses (abortable error state). We record the first failure and make commit()
//    fail with TransactionAbortableError; abort() still works.
//
// 6. Sequence numbers after a failed transaction. The client advances a partition's idempotent
//    sequence number when it sends a batch, and resets the numbers only when it initializes a
//    producer id; a transactional producer never does that again after its first transaction. When a
//    batch is lost (its leader broker dies mid-request), the broker still expects the old sequence
//    number and refuses every later batch of that partition with OUT_OF_ORDER_SEQUENCE_NUMBER, for
//    ever: found by killing a broker of a three-node cluster under load
//    (test/integration/security/three-brokers.test.ts). Like the Java client after an abortable error
//    (KIP-360), we bump the epoch: the next transaction after a failed one starts with InitProducerId
//    for the same producer id and epoch, which fences whatever was in flight, aborts a transaction
//    the coordinator still has open, and starts the sequence numbers from zero again.
//
// 7. A failed beginTransaction leaves its transaction behind. When FindCoordinator or InitProducerId
//    fails (the broker is down), the client keeps the new transaction as the active one and refuses
//    every later beginTransaction; we cancel it locally, so that a retry after the outage works.
import {
  addPartitionsToTxnV3,
  createPromisifiedCallback,
  findErrorBy,
  kCallbackPromise,
  kGetApi,
  Producer,
  type API,
  type Callback,
  type CallbackWithPromise,
  type ProduceOptions,
  type ProducerInfo,
  type ProducerOptions,
} from '@platformatic/kafka';

/** The client's Transaction class (not exported by the package root). */
export type Transaction<Key = Buffer, Value = Buffer, HeaderKey = Buffer, HeaderValue = Buffer> = NonNullable<
  Producer<Key, Value, HeaderKey, HeaderValue>['transaction']
>;

/** Highest AddPartitionsToTxn version a client (not a broker) should send: v4+ is inter-broker. */
export const CLIENT_MAX_ADD_PARTITIONS_TO_TXN_VERSION = 3;

export class TransactionAbortableError extends Error {
  constructor(cause: unknown) {
    super(
      'The transaction had a failed send or offset commit and can only be aborted: ' +
        (cause instanceof Error ? cause.message : String(cause)),
      { cause },
    );
    this.name = 'TransactionAbortableError';
  }
}

/** True when the error means another producer instance with the same transactional.id took over. */
export function isProducerFencedError(error: unknown): boolean {
  if (!(error instanceof Error)) {
    return false;
  }
  return (
    findErrorBy(error, 'apiId', 'PRODUCER_FENCED') !== null ||
    findErrorBy(error, 'apiId', 'INVALID_PRODUCER_EPOCH') !== null
  );
}

// biome-ignore lint/suspicious/noExplicitAny: the client's generic parameters are irrelevant here
type AnyTransaction = Transaction<any, any, any, any>;

interface TransactionGuardState {
  failure: unknown;
  /** Set once a request that may open the transaction on the broker has been started. */
  touched: boolean;
}

const guardedTransactions = new WeakMap<AnyTransaction, TransactionGuardState>();

/**
 * Records a failure inside `transaction`; a later commit() of a guarded transaction then fails with
 * TransactionAbortableError. Used by helpers that talk to the broker on the transaction's behalf.
 */
export function markTransactionFailed(transaction: AnyTransaction, error: unknown): void {
  const state = guardedTransactions.get(transaction);
  if (state && state.failure === undefined) {
    state.failure = error;
  }
}

/** The first failure recorded in a guarded transaction, if any. */
export function transactionFailure(transaction: AnyTransaction): unknown {
  return guardedTransactions.get(transaction)?.failure;
}

/** Runs callback-style tasks one at a time, in call order. */
function createSerialRunner(): (task: (release: () => void) => void) => void {
  let running = false;
  const pending: Array<() => void> = [];
  const startNext = (): void => {
    const next = pending.shift();
    if (next) {
      next();
    } else {
      running = false;
    }
  };
  return (task) => {
    const start = (): void => {
      running = true;
      let released = false;
      task(() => {
        if (!released) {
          released = true;
          startNext();
        }
      });
    };
    if (running) {
      pending.push(start);
    } else {
      start();
    }
  };
}

/**
 * Wraps an instance method `name(...args, callback?)` so that calls run one at a time and failures
 * are recorded on `state`. Supports both the callback and the promise form, like the original.
 */
function wrapSerialized(
  transaction: AnyTransaction,
  name: 'addPartitions' | 'addOffset' | 'addConsumer',
  arity: number,
  state: TransactionGuardState,
): void {
  const original = (transaction[name] as (...args: unknown[]) => unknown).bind(transaction);
  const run = createSerialRunner();
  const wrapped = (...args: unknown[]): unknown => {
    const given = args.length > arity ? (args[arity] as CallbackWithPromise<void> | undefined) : undefined;
    const callback = given ?? createPromisifiedCallback<void>();
    const callArgs = args.slice(0, arity);
    state.touched = true;
    run((release) => {
      original(...callArgs, (error: Error | null) => {
        release();
        if (error && state.failure === undefined) {
          state.failure = error;
        }
        callback(error);
      });
    });
    return callback[kCallbackPromise];
  };
  Object.defineProperty(transaction, name, { value: wrapped, configurable: true, writable: true });
}

function guardTransaction<T extends AnyTransaction>(transaction: T, onFailed: () => void): T {
  if (guardedTransactions.has(transaction)) {
    return transaction;
  }
  const state: TransactionGuardState = { failure: undefined, touched: false };
  guardedTransactions.set(transaction, state);

  wrapSerialized(transaction, 'addPartitions', 2, state);
  wrapSerialized(transaction, 'addOffset', 1, state);
  wrapSerialized(transaction, 'addConsumer', 1, state);

  const originalSend = transaction.send.bind(transaction) as (options: unknown, callback: Callback<unknown>) => void;
  const send = (options: unknown, given?: CallbackWithPromise<unknown>): unknown => {
    const callback = given ?? createPromisifiedCallback<unknown>();
    originalSend(options, (error, result) => {
      if (error && state.failure === undefined) {
        state.failure = error;
      }
      callback(error, result);
    });
    return callback[kCallbackPromise];
  };
  Object.defineProperty(transaction, 'send', { value: send, configurable: true, writable: true });

  const originalCommit = transaction.commit.bind(transaction) as (callback: Callback<void>) => void;
  const originalAbort = transaction.abort.bind(transaction) as (callback: Callback<void>) => void;
  const cancel = transaction.cancel.bind(transaction) as (callback: Callback<void>) => void;
  const commit = (given?: CallbackWithPromise<void>): unknown => {
    const callback = given ?? createPromisifiedCallback<void>();
    if (state.failure !== undefined) {
      onFailed();
      callback(new TransactionAbortableError(state.failure));
    } else if (!state.touched) {
      cancel(callback);
    } else {
      originalCommit((error) => {
        if (error) {
          onFailed();
        }
        callback(error);
      });
    }
    return callback[kCallbackPromise];
  };
  const abort = (given?: CallbackWithPromise<void>): unknown => {
    const callback = given ?? createPromisifiedCallback<void>();
    if (!state.touched) {
      cancel(callback);
    } else {
      originalAbort((error) => {
        // Aborted batches keep their sequence numbers on the broker; lost or failed ones do not (trap 6).
        if (error || state.failure !== undefined) {
          onFailed();
        }
        callback(error);
      });
    }
    return callback[kCallbackPromise];
  };
  Object.defineProperty(transaction, 'commit', { value: commit, configurable: true, writable: true });
  Object.defineProperty(transaction, 'abort', { value: abort, configurable: true, writable: true });

  return transaction;
}

/**
 * Producer with the fixes described at the top of this file. Create it through
 * `createTransactionalProducer` / `createIdempotentProducer` (src/kafka/clients.ts).
 */
export class BankstreamProducer<
  Key = Buffer,
  Value = Buffer,
  HeaderKey = Buffer,
  HeaderValue = Buffer,
> extends Producer<Key, Value, HeaderKey, HeaderValue> {
  #lastProducerIdAndEpoch: { producerId: bigint; producerEpoch: number } | undefined;
  /** Set when a transaction failed: the next one starts with an epoch bump (trap 6). */
  #epochBumpNeeded: boolean;
  readonly #markEpochBumpNeeded: () => void;

  constructor(options: ProducerOptions<Key, Value, HeaderKey, HeaderValue>) {
    super(options);
    this.#lastProducerIdAndEpoch = undefined;
    this.#epochBumpNeeded = false;
    this.#markEpochBumpNeeded = () => {
      this.#epochBumpNeeded = true;
    };
  }

  override initIdempotentProducer(
    options: ProduceOptions<Key, Value, HeaderKey, HeaderValue>,
    callback: CallbackWithPromise<ProducerInfo>,
  ): void;
  override initIdempotentProducer(options: ProduceOptions<Key, Value, HeaderKey, HeaderValue>): Promise<ProducerInfo>;
  override initIdempotentProducer(
    options: ProduceOptions<Key, Value, HeaderKey, HeaderValue>,
    given?: CallbackWithPromise<ProducerInfo>,
  ): undefined | Promise<ProducerInfo> {
    const callback = given ?? createPromisifiedCallback<ProducerInfo>();
    const initOptions = { ...options };
    if (initOptions.producerId === undefined && initOptions.producerEpoch === undefined) {
      const last = this.#lastProducerIdAndEpoch;
      initOptions.producerId = last ? last.producerId : -1n;
      initOptions.producerEpoch = last ? last.producerEpoch : -1;
    }
    super.initIdempotentProducer(initOptions, (error, info) => {
      if (!error && info) {
        this.#lastProducerIdAndEpoch = { producerId: info.producerId, producerEpoch: info.producerEpoch };
      }
      callback(error, info);
    });
    return callback[kCallbackPromise];
  }

  override beginTransaction(
    options: ProduceOptions<Key, Value, HeaderKey, HeaderValue>,
    callback: CallbackWithPromise<Transaction<Key, Value, HeaderKey, HeaderValue>>,
  ): void;
  override beginTransaction(
    options?: ProduceOptions<Key, Value, HeaderKey, HeaderValue>,
  ): Promise<Transaction<Key, Value, HeaderKey, HeaderValue>>;
  override beginTransaction(
    options?: ProduceOptions<Key, Value, HeaderKey, HeaderValue>,
    given?: CallbackWithPromise<Transaction<Key, Value, HeaderKey, HeaderValue>>,
  ): undefined | Promise<Transaction<Key, Value, HeaderKey, HeaderValue>> {
    const callback = given ?? createPromisifiedCallback<Transaction<Key, Value, HeaderKey, HeaderValue>>();
    super.beginTransaction(options ?? {}, (error, transaction) => {
      if (error || !transaction) {
        // Trap 7: the client keeps the transaction it created when FindCoordinator or InitProducerId
        // fails (the broker is down), and every later beginTransaction fails with "There is already an
        // active transaction". Nothing reached the broker for it: drop it locally so the caller can retry.
        const stuck = this.transaction;
        if (stuck && !stuck.completed) {
          stuck.cancel(() => callback(error));
          return;
        }
        callback(error);
        return;
      }
      if (!this.#epochBumpNeeded) {
        callback(null, guardTransaction(transaction, this.#markEpochBumpNeeded));
        return;
      }
      // InitProducerId while the client holds the new (still empty) transaction, so that it is sent
      // with the transactional id; our initIdempotentProducer passes the current producer id and epoch.
      this.initIdempotentProducer({}, (initError) => {
        if (initError) {
          transaction.cancel(() => callback(initError));
          return;
        }
        this.#epochBumpNeeded = false;
        callback(null, guardTransaction(transaction, this.#markEpochBumpNeeded));
      });
    });
    return callback[kCallbackPromise];
  }

  override [kGetApi]<RequestArguments extends Array<unknown>, ResponseType>(
    name: string,
    callback: Callback<API<RequestArguments, ResponseType>>,
  ): void {
    if (name !== 'AddPartitionsToTxn') {
      super[kGetApi](name, callback);
      return;
    }
    super[kGetApi]<RequestArguments, ResponseType>(name, (error, api) => {
      if (error || !api) {
        callback(error);
        return;
      }
      if (api.version > CLIENT_MAX_ADD_PARTITIONS_TO_TXN_VERSION) {
        callback(null, addPartitionsToTxnV3.api as unknown as API<RequestArguments, ResponseType>);
        return;
      }
      callback(null, api);
    });
  }
}
