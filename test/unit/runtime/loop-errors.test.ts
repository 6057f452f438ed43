import { describe, expect, it } from 'vitest';
import { StoppedError } from '../../../src/kafka/retry.ts';
import { FatalStreamsError, TaskMigratedError } from '../../../src/runtime/errors.ts';
import { classifyLoopError } from '../../../src/runtime/loop-errors.ts';
import { ProcessingError } from '../../../src/topology/processing-errors.ts';

/** An error shaped as @platformatic/kafka builds a protocol error (apiId names the Kafka error code). */
function kafkaError(apiId: string): Error {
  return Object.assign(new Error(`protocol error ${apiId}`), { apiId });
}

describe('classifyLoopError', () => {
  it('should stop when the processing exception handler chose to fail on a record', () => {
    const error = new ProcessingError(
      { node: 'p', phase: 'process', topic: 'in', partition: 0, offset: 5n },
      new Error('boom'),
    );
    const verdict = classifyLoopError(error, undefined);
    expect(verdict.kind).toBe('fatal');
    expect(verdict.kind === 'fatal' && verdict.fatal.code).toBe('processing_failed');
  });

  it('should stop with the error itself when it is already fatal', () => {
    const error = new FatalStreamsError('topics_missing', 'topic x does not exist');
    expect(classifyLoopError(error, undefined)).toEqual({ kind: 'fatal', fatal: error });
  });

  it('should retry without counting a failure when the task migrated or the generation is stale', () => {
    for (const error of [new TaskMigratedError('rebalance'), kafkaError('ILLEGAL_GENERATION')]) {
      expect(classifyLoopError(error, undefined)).toEqual({
        kind: 'retry',
        migrated: true,
        brokerDown: false,
        countsAsFailure: false,
        fatal: undefined,
      });
    }
  });

  it('should retry without counting a failure when a fencing answer may come from a timed-out transaction', () => {
    const verdict = classifyLoopError(kafkaError('PRODUCER_FENCED'), undefined);
    expect(verdict).toMatchObject({ kind: 'retry', migrated: true, countsAsFailure: false, fatal: undefined });
  });

  it('should wait out the broker without counting a failure when the broker does not answer', () => {
    const error = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9092'), { code: 'ECONNREFUSED' });
    expect(classifyLoopError(error, undefined)).toMatchObject({
      kind: 'retry',
      brokerDown: true,
      countsAsFailure: false,
    });
  });

  it('should count a failure when an error is neither a rebalance nor an outage', () => {
    expect(classifyLoopError(new Error('a store failed'), undefined)).toEqual({
      kind: 'retry',
      migrated: false,
      brokerDown: false,
      countsAsFailure: true,
      fatal: undefined,
    });
  });

  it('should count a stop as a failure when it was not asked for (the thread returns before when it was)', () => {
    expect(classifyLoopError(new StoppedError('joinGroup'), undefined)).toMatchObject({
      kind: 'retry',
      countsAsFailure: true,
    });
  });
});
