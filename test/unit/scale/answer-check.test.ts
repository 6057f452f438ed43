// The scale-out test's balance check must be able to fail: a value no version had, a stale store and a read
// ahead of the reported position are caught; a correct answer within its bounds passes.
import { describe, expect, it } from 'vitest';
import { type Answer, type BalanceVersion, answerViolations, servedAgain } from '../../integration/scale/poller.ts';

const history = new Map<string, BalanceVersion[]>([
  [
    'a',
    [
      { offset: 10n, balance: 100_000n, inFlight: 0n },
      { offset: 20n, balance: 99_000n, inFlight: 1000n },
      { offset: 30n, balance: 99_000n, inFlight: 0n },
    ],
  ],
]);

function ok(
  sentMs: number,
  receivedMs: number,
  balance: bigint,
  inFlight: bigint,
  position: bigint,
  instance = 'i0',
): Answer {
  return {
    instance,
    accountId: 'a',
    partition: 0,
    sentMs,
    receivedMs,
    kind: 'ok',
    status: 200,
    balance,
    inFlight,
    servedBy: instance,
    position,
  };
}

describe('answerViolations', () => {
  it('should accept answers when each shows the state at a position between the bound and its own', () => {
    const answers = [
      ok(0, 5, 100_000n, 0n, 11n),
      ok(10, 15, 99_000n, 1000n, 21n, 'i1'),
      ok(12, 13, 100_000n, 0n, 21n),
      ok(20, 25, 99_000n, 0n, 40n),
    ];
    expect(answerViolations(answers, history)).toEqual([]);
  });

  it('should flag a balance when the account never had it', () => {
    expect(answerViolations([ok(0, 5, 123n, 0n, 40n)], history)).toHaveLength(1);
  });

  it('should flag a stale store when an earlier answer had already reached a later position', () => {
    const answers = [ok(0, 5, 99_000n, 0n, 31n), ok(10, 15, 99_000n, 1000n, 21n, 'i1')];
    expect(answerViolations(answers, history)).toEqual([expect.stringContaining('stale store')]);
  });

  it('should flag a value when it is older than what an earlier answer had shown', () => {
    const answers = [ok(0, 5, 99_000n, 1000n, 21n), ok(10, 15, 100_000n, 0n, 21n, 'i1')];
    expect(answerViolations(answers, history)).toHaveLength(1);
  });

  it('should flag a value when it is ahead of the position the answer reports', () => {
    expect(answerViolations([ok(0, 5, 99_000n, 0n, 21n)], history)).toHaveLength(1);
  });

  it('should measure the time until a partition is answered 200 again when an instance goes', () => {
    const answers: Answer[] = [
      { ...ok(0, 1, 100_000n, 0n, 11n), kind: 'unavailable' },
      ok(100, 150, 100_000n, 0n, 11n),
      ok(300, 340, 100_000n, 0n, 11n),
    ];
    expect(servedAgain(answers, 120, [0, 1])).toEqual(
      new Map([
        [0, 220],
        [1, undefined],
      ]),
    );
  });
});
