// The read side of a primary + streaming replica pair (private servers): connectPg never hands a writer
// a standby, the history endpoint's lag rule against a replica whose replay is paused, and the read
// model's circuit breaker opening on a dead server, probing, and closing when it is back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { createLogger } from '../../../src/config/logger.ts';
import { ApiError } from '../../../src/problems/errors.ts';
import { ReadModel } from '../../../src/http/history.ts';
import { migrate } from '../../../src/sinks/migrate.ts';
import { PgConnectError, connectPg } from '../../../src/sinks/pg-connection.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { PrivatePostgresPair, freePortPair } from '../../helpers/pg-replica.ts';

const DATABASE = 'bankstream_replica';
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
let pair: PrivatePostgresPair;

beforeAll(async () => {
  pair = new PrivatePostgresPair(await freePortPair(57_000, 57_800));
  await pair.init();
  await migrate({ databaseUrl: pair.url(DATABASE) });
  await pair.waitReplicaCaughtUp();
}, 240_000);
afterAll(() => pair?.destroy(), 60_000);

function readModel(extra: Record<string, string>): ReadModel {
  return new ReadModel(
    loadConfig({ DATABASE_URL: pair.url(DATABASE), DATABASE_READ_URL: pair.nodeUrl(pair.replica, DATABASE), ...extra }),
    logger,
  );
}

describe('PostgreSQL primary and replica', () => {
  it('should skip the standby when connecting with read-write whatever the host order', async () => {
    const replicaFirst = `postgres://postgres@127.0.0.1:${pair.replica.port},127.0.0.1:${pair.primary.port}/${DATABASE}?target_session_attrs=read-write`;
    const db = await connectPg(replicaFirst, undefined);
    try {
      expect((await db.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby')).rows[0]?.standby).toBe(
        false,
      );
      expect(db.port).toBe(pair.primary.port);
    } finally {
      await db.end();
    }
  });

  it('should refuse with NO_WRITABLE_SERVER naming the host when only a standby is there', async () => {
    const error = await connectPg(pair.nodeUrl(pair.replica, DATABASE), undefined, { target: 'read-write' }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PgConnectError);
    expect((error as PgConnectError).code).toBe('NO_WRITABLE_SERVER');
    expect((error as PgConnectError).message).toContain(`127.0.0.1:${pair.replica.port}: a standby`);
    await expect(migrate({ databaseUrl: pair.nodeUrl(pair.replica, DATABASE) })).rejects.toThrow(
      /NO_WRITABLE_SERVER|no read-write PostgreSQL server/,
    );
  });

  it('should read the replica when it is current and fall back or answer 503 when its replay lags past the bound', async () => {
    const fallback = readModel({ READ_REPLICA_LAG_MAX_MS: '300', READ_REPLICA_LAG_POLICY: 'primary' });
    const strict = readModel({ READ_REPLICA_LAG_MAX_MS: '300', READ_REPLICA_LAG_POLICY: 'unavailable' });
    try {
      await pair.waitReplicaCaughtUp();
      const current = await fallback.history('nobody', 10, undefined);
      expect(current.read).toEqual({ source: 'replica', lagMs: 0 });

      await pair.sql(pair.replica, 'SELECT pg_wal_replay_pause()');
      // A write the replica receives and does not replay: from now on it falls behind.
      await pair.sql(pair.primary, 'CREATE TABLE IF NOT EXISTS lag_probe (at timestamptz)', [], DATABASE);
      await pair.sql(pair.primary, 'INSERT INTO lag_probe VALUES (now())', [], DATABASE);
      await waitFor(
        'the fallback reader to leave the replica',
        async () => (await fallback.history('nobody', 10, undefined)).read.source === 'primary',
        30_000,
        200,
      );
      const error = await strict.history('nobody', 10, undefined).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ApiError);
      expect((error as ApiError).status).toBe(503);
      expect((error as ApiError).message).toMatch(/behind|cannot tell/);

      await pair.sql(pair.replica, 'SELECT pg_wal_replay_resume()');
      await pair.waitReplicaCaughtUp();
      await waitFor(
        'the strict reader to read the replica again',
        async () => (await strict.history('nobody', 10, undefined).catch(() => undefined))?.read.source === 'replica',
        30_000,
        200,
      );
    } finally {
      await pair.sql(pair.replica, 'SELECT pg_wal_replay_resume()').catch(() => undefined);
      await Promise.all([fallback.close(), strict.close()]);
    }
  }, 90_000);

  it('should move the API pool past a dead host and past a standby to the primary when the host list says read-write', async () => {
    const deadPort = pair.primary.port + 2;
    const url = `postgres://postgres@127.0.0.1:${deadPort},127.0.0.1:${pair.replica.port},127.0.0.1:${pair.primary.port}/${DATABASE}?target_session_attrs=read-write`;
    const model = new ReadModel(loadConfig({ DATABASE_URL: url }), logger);
    try {
      await expect(model.owners(['a'])).resolves.toEqual(new Map());
      expect(
        (await model.pool.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby')).rows[0]?.standby,
      ).toBe(false);
    } finally {
      await model.close();
    }
  });

  it('should open the circuit breaker on a dead server, probe it half-open and close when it answers again', async () => {
    const model = new ReadModel(
      loadConfig({
        DATABASE_URL: pair.nodeUrl(pair.primary, DATABASE),
        DB_BREAKER_FAILURES: '3',
        DB_BREAKER_OPEN_MS: '1000',
      }),
      logger,
    );
    try {
      await expect(model.owners(['a'])).resolves.toEqual(new Map());
      await pair.kill(pair.primary);
      for (let i = 0; i < 3; i++) await expect(model.owners(['a'])).rejects.toMatchObject({ status: 503 });
      expect(model.breakerState).toBe('open');
      const refused = (await model.owners(['a']).catch((e: unknown) => e)) as ApiError;
      expect(refused.status).toBe(503);
      expect(refused.retryAfterS).toBe(1);
      expect(refused.message).toContain('circuit breaker');

      await pair.start(pair.primary, 10);
      await waitFor('the breaker to go half-open', async () => model.breakerState === 'half-open', 10_000, 50);
      await waitFor(
        'the probe to close the breaker',
        async () =>
          await model.owners(['a']).then(
            () => true,
            () => false,
          ),
        30_000,
        200,
      );
      expect(model.breakerState).toBe('closed');
    } finally {
      await model.close();
    }
  }, 90_000);
});
