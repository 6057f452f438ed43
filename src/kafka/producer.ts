// A @platformatic/kafka 2.12 Producer with its transactional traps worked around, each the way the Java
// client behaves: InitProducerId with -1/-1 on a restart, AddPartitionsToTxn v3 (v4+ is inter-broker
// and refused under ACLs), the transaction's add calls serialised (the client merges concurrent ones),
// empty transactions completed locally, no commit after a failure, an epoch bump after a failed
// transaction (stale sequence numbers), and a failed beginTransaction cancelled. Why each one, and the
// tests that show it against the broker: docs/notes/producer.md.
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
        // Aborted batches keep their sequence numbers on the broker; lost or failed ones do not (trap 6 in docs/notes/producer.md).
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
  /** Set when a transaction failed: the next one starts with an epoch bump (trap 6 in docs/notes/producer.md). */
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
