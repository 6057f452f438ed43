// A connection from connectPg that the server drops (a restart, a failover, an administrator's
// pg_terminate_backend) must not crash the process: node-postgres emits 'error' on the client, and a
// client whose caller has not attached its own listener yet (the sink's staging DDL right after connect,
// migrations at start, the ops commands) would otherwise throw it as an uncaught exception. The query in
// flight, or the next one, fails with its own error instead.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { connectPg } from '../../../src/sinks/pg-connection.ts';
import { POSTGRES_SERVER_URL } from '../support/postgres.ts';

describe('connectPg, a connection the server drops', () => {
  it('should fail the query in flight and the next one, and throw nothing uncaught', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.prependListener('uncaughtException', onUncaught);
    const db = await connectPg(POSTGRES_SERVER_URL, undefined, { target: 'read-write' });
    const admin = new pg.Client({ connectionString: POSTGRES_SERVER_URL });
    await admin.connect();
    try {
      const pid = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const inFlight = db.query('SELECT pg_sleep(5)').catch((error: unknown) => error);
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      const failed = await inFlight;
      expect(failed).toBeInstanceOf(Error);
      expect((failed as Error).message).toMatch(/terminat/);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await expect(db.query('SELECT 1')).rejects.toThrow();
    } finally {
      process.removeListener('uncaughtException', onUncaught);
      await db.end().catch(() => undefined);
      await admin.end();
    }
    expect(uncaught).toEqual([]);
  });
});
