// Every cursor the decoder accepts is a value PostgreSQL accepts in the history query's parameters: a
// crafted cursor can only ever be a 400, never a database error answered as 503.
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../../src/problems/errors.ts';
import { decodeCursor } from '../../../src/http/history.ts';
import { POSTGRES_SERVER_URL } from '../support/postgres.ts';

let client: pg.Client;

beforeAll(async () => {
  client = new pg.Client({ connectionString: POSTGRES_SERVER_URL });
  await client.connect();
});

afterAll(async () => {
  await client.end();
});

const pad = (n: number, width: number) => String(n).padStart(width, '0');
const dateish = fc
  .tuple(
    fc.integer({ min: 0, max: 9999 }),
    fc.integer({ min: 0, max: 13 }),
    fc.integer({ min: 0, max: 32 }),
    fc.integer({ min: 0, max: 25 }),
    fc.integer({ min: 0, max: 61 }),
    fc.integer({ min: 0, max: 61 }),
    fc.integer({ min: 0, max: 999_999 }),
  )
  .map(
    ([y, mo, d, h, mi, s, us]) =>
      `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}.${pad(us, 6)}Z`,
  );

describe('history cursors against PostgreSQL', () => {
  it('should only accept cursors whose timestamp and id PostgreSQL takes when the cursor is crafted', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(dateish, fc.string({ unit: 'binary', maxLength: 40 }), async (at, id) => {
        let decoded: { at: string; transferId: string; rowId: string };
        try {
          decoded = decodeCursor(Buffer.from(JSON.stringify([at, id]), 'utf8').toString('base64url'));
        } catch (error) {
          expect(error).toBeInstanceOf(ApiError);
          expect((error as ApiError).code).toBe('invalid_parameter');
          return;
        }
        accepted++;
        const rows = (
          await client.query<{ at: Date; id: string }>(
            'SELECT $1::timestamptz AS at, $2::text AS id, $3::bigint AS row_id',
            [decoded.at, decoded.transferId, decoded.rowId],
          )
        ).rows;
        expect(rows[0]!.id).toBe(decoded.transferId);
      }),
      { numRuns: 500 },
    );
    // The generator reaches valid cursors too, so the property is not vacuous.
    expect(accepted).toBeGreaterThan(0);
  });
});
