// What the stream thread does with an error that ended a pass of its loop, decided in one pure function.
import type { ConnectionOptions } from '@platformatic/kafka';
import type { KafkaSecurityOptions } from '../kafka/clients.ts';
import { isProducerFencedError } from '../kafka/producer.ts';
import { isBrokerUnavailable, permanentKafkaError, StoppedError } from '../kafka/retry.ts';
import { ProcessingError } from '../topology/processing-errors.ts';
import { FatalStreamsError, isFencedError, isMigratedError, TaskMigratedError } from './errors.ts';

export type LoopErrorVerdict =
  /** Stop now: the error is fatal as it is (or the 'fail' processing exception handler chose to stop). */
  | { kind: 'fatal'; fatal: FatalStreamsError }
  /**
   * Abort, close the tasks and go on (or stop, when `fatal` is set: an error that waiting cannot heal,
   * such as a missing ACL). `migrated`: a rebalance or fencing; `brokerDown`: an outage, waited out;
   * `countsAsFailure`: neither, so it counts towards the failures in a row that stop the instance.
   */
  | {
      kind: 'retry';
      migrated: boolean;
      brokerDown: boolean;
      countsAsFailure: boolean;
      fatal: FatalStreamsError | undefined;
    };

export function classifyLoopError(error: unknown, connection: ConnectionOptions | undefined): LoopErrorVerdict {
  // The 'fail' processing exception handler: the user chose to stop on a record that throws.
  if (error instanceof ProcessingError)
    return { kind: 'fatal', fatal: new FatalStreamsError('processing_failed', error.message, { cause: error }) };
  if (error instanceof FatalStreamsError) return { kind: 'fatal', fatal: error };
  // Rebalances are expected, broker outages are waited out; anything else failing again and again is a
  // bug or a broken environment.
  // A fencing answer to a send, commit or abort is not proof of a newer instance: a transaction that
  // outlived its timeout (a broker outage) is aborted by the coordinator with an epoch bump, and the
  // next EndTxn gets PRODUCER_FENCED too. The next transaction's InitProducerId, sent with this
  // producer's id and epoch (producer.ts, trap 1), tells them apart: a zombie is refused there and stops.
  const migrated =
    error instanceof TaskMigratedError ||
    isMigratedError(error) ||
    isFencedError(error) ||
    isProducerFencedError(error);
  const fatalAccess = migrated ? undefined : permanentKafkaError(error, connection as KafkaSecurityOptions | undefined);
  const brokerDown = !fatalAccess && !migrated && isBrokerUnavailable(error);
  if (fatalAccess && !(fatalAccess instanceof StoppedError)) {
    const fatal =
      fatalAccess instanceof FatalStreamsError
        ? fatalAccess
        : new FatalStreamsError((fatalAccess as { code?: string }).code ?? 'kafka_fatal', fatalAccess.message, {
            cause: error,
          });
    return { kind: 'retry', migrated, brokerDown, countsAsFailure: false, fatal };
  }
  return { kind: 'retry', migrated, brokerDown, countsAsFailure: !brokerDown && !migrated, fatal: undefined };
}

/** An error a broker step of the start cannot heal by waiting, as FatalStreamsError when it is Kafka's. */
export function permanentStartError(error: unknown, connection: ConnectionOptions | undefined): Error | undefined {
  const fatal = permanentKafkaError(error, connection as KafkaSecurityOptions | undefined);
  if (!fatal || fatal instanceof FatalStreamsError || fatal instanceof StoppedError) return fatal;
  return new FatalStreamsError((fatal as { code?: string }).code ?? 'kafka_fatal', fatal.message, { cause: error });
}
