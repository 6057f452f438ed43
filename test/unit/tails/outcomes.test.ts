import { describe, expect, it } from 'vitest';
import type { MoneyCommand } from '../../../src/commands/sender.ts';
import { sameFields } from '../../../src/tails/outcomes.ts';

const transfer: MoneyCommand = {
  type: 'transfer',
  transferId: 't1',
  from: 'a',
  to: 'b',
  amount: '1.00',
  currency: 'EUR',
};

describe('sameFields', () => {
  it('should match an outcome when it carries the command fields', () => {
    expect(
      sameFields(transfer, {
        transferId: 't1',
        type: 'transfer',
        from: 'a',
        to: 'b',
        amount: '1.00',
        currency: 'EUR',
        completedAt: 'x',
      }),
    ).toBe(true);
  });

  it('should not match when the amount, an account or the reference differs', () => {
    const outcome = { transferId: 't1', type: 'transfer', from: 'a', to: 'b', amount: '1.00', currency: 'EUR' };

    expect(sameFields(transfer, { ...outcome, amount: '2.00' })).toBe(false);
    expect(sameFields(transfer, { ...outcome, to: 'c' })).toBe(false);
    expect(sameFields(transfer, { ...outcome, reference: 'rent' })).toBe(false);
    expect(
      sameFields(
        { type: 'deposit', transferId: 'd', accountId: 'a', amount: '1.00', currency: 'EUR' },
        { type: 'withdrawal', accountId: 'a', amount: '1.00', currency: 'EUR' },
      ),
    ).toBe(false);
  });
});
