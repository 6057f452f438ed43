import { describe, expect, it } from 'vitest';
import { ApiError } from '../../../src/problems/errors.ts';
import { BodyReader, boolQuery, idParam, idempotencyKey, intQuery } from '../../../src/http/validate.ts';

function failure(run: () => unknown): ApiError {
  try {
    run();
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('expected an ApiError');
}

describe('BodyReader', () => {
  it('should normalize an amount to the currency digits when it has fewer', () => {
    const body = new BodyReader({ currency: 'EUR', amount: '10.5' });

    expect(body.money('amount', body.currency('currency'))).toBe('10.50');
    body.done();
  });

  it('should list every invalid and unknown field in one 422 when several are wrong', () => {
    const body = new BodyReader({ accountId: '', currency: 'XXX', amount: 10, extra: true });
    body.id('accountId');
    body.money('amount', body.currency('currency'));

    const error = failure(() => body.done());

    expect(error.status).toBe(422);
    expect(error.code).toBe('validation_failed');
    expect((error.extensions['errors'] as Array<{ field: string }>).map((e) => e.field)).toEqual([
      'accountId',
      'currency',
      'amount',
      'extra',
    ]);
  });

  it('should refuse an amount when it is a JSON number, negative, zero or too precise', () => {
    for (const amount of [12.5, '-1.00', '0', '1.001', '1e3', ' 1.00']) {
      const body = new BodyReader({ amount });
      body.money('amount', 'EUR');
      expect(() => body.done(), JSON.stringify(amount)).toThrow(ApiError);
    }
  });

  it('should accept a zero overdraft limit when zero is allowed', () => {
    const body = new BodyReader({ overdraftLimit: '0' });

    expect(body.money('overdraftLimit', 'JPY', { allowZero: true })).toBe('0');
    body.done();
  });

  it('should refuse an id when it has spaces or control characters', () => {
    for (const id of ['a b', 'tab\t', 'x'.repeat(257), 'é']) {
      const body = new BodyReader({ accountId: id });
      body.id('accountId');
      expect(() => body.done(), id).toThrow(ApiError);
    }
  });

  it('should ignore inherited properties when a body names __proto__', () => {
    const body = new BodyReader(JSON.parse('{"__proto__": {"accountId": "x"}}') as Record<string, unknown>);

    expect(body.id('accountId', true)).toBeUndefined();
    expect(() => body.done()).toThrow(/__proto__/);
  });
});

describe('parameters', () => {
  it('should answer 400 invalid_parameter when a query integer is out of range or not an integer', () => {
    expect(intQuery({ wait: '500' }, 'wait', 0, 1000)).toBe(500);
    expect(intQuery({}, 'wait', 0, 1000)).toBeUndefined();
    for (const wait of ['1001', '-1', '1.5', 'abc', ''])
      expect(failure(() => intQuery({ wait }, 'wait', 0, 1000)).status).toBe(400);
    expect(failure(() => intQuery({ wait: ['1', '2'] }, 'wait', 0, 1000)).code).toBe('invalid_parameter');
  });

  it('should take only true or false for a boolean query parameter', () => {
    expect(boolQuery({ allowStale: 'true' }, 'allowStale')).toBe(true);
    expect(boolQuery({ allowStale: 'false' }, 'allowStale')).toBe(false);
    expect(boolQuery({}, 'allowStale')).toBeUndefined();
    for (const allowStale of ['1', 'yes', 'TRUE', '', ['true', 'true']])
      expect(failure(() => boolQuery({ allowStale }, 'allowStale')).code).toBe('invalid_parameter');
  });

  it('should answer 400 when a path id or an Idempotency-Key is unusable', () => {
    expect(idParam('id', 'acc-1')).toBe('acc-1');
    expect(failure(() => idParam('id', 'has space')).code).toBe('invalid_parameter');
    expect(idempotencyKey('key-1')).toBe('key-1');
    expect(failure(() => idempotencyKey(['a', 'b'])).status).toBe(400);
  });
});
