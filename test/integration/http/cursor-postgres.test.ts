// Every cursor the decoder accepts is a value PostgreSQL accepts in the history query's parameters: a
// crafted cursor can only ever be a 400, never a database error answered as 503.
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../../src/problems/errors.ts';
import { decodeCursor } from '../../../src/http/history.ts';
import { POSTGRES_SERVER_URL } from '../support/postgres.ts';
import { dateish } from '../../fixtures/dateish.ts';

let client: pg.Client;

beforeAll(async () => {
  client = new pg.Client({ connectionString: POSTGRES_SERVER_URL });
  await client.connect();
});

afterAll(async () => {
  await client.end();
});

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
