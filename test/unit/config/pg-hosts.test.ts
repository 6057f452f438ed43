import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/config.ts';
import { PG_HOSTS_MAX, firstHostUrl, parsePgHosts, withDatabase } from '../../../src/config/pg-hosts.ts';

describe('libpq-style host lists', () => {
  it('should split a host list into one URL per host and take target_session_attrs out', () => {
    const parsed = parsePgHosts(
      'postgres://u:p%40ss@db-a:5432,db-b:6543,[::1]/bank?target_session_attrs=read-write&sslmode=require',
    );
    expect(parsed.targetSessionAttrs).toBe('read-write');
    expect(parsed.hosts.map((h) => h.address)).toEqual(['db-a:5432', 'db-b:6543', '[::1]:5432']);
    expect(parsed.hosts[1]?.url).toBe('postgres://u:p%40ss@db-b:6543/bank?sslmode=require');
  });

  it('should keep a single-host URL exactly as given when there is nothing to take out', () => {
    const url = 'postgres://postgres@127.0.0.1:5432/bankstream?application_name=x';
    expect(parsePgHosts(url)).toEqual({ hosts: [{ address: '127.0.0.1:5432', url }], targetSessionAttrs: 'any' });
    expect(firstHostUrl(url)).toBe(url);
  });

  it('should name another database on every host', () => {
    expect(withDatabase('postgres://u@a:1,b:2/bank?target_session_attrs=read-write', 'postgres')).toBe(
      'postgres://u@a:1,b:2/postgres?target_session_attrs=read-write',
    );
  });

  it('should stop start-up with a ConfigError naming the variable for a bad host list', () => {
    const bad = [
      'postgres://u@a:1,,b:2/db',
      'postgres://u@a:1,b:99999/db',
      'postgres://u@a,b/db?target_session_attrs=writable',
      `postgres://u@${Array.from({ length: PG_HOSTS_MAX + 1 }, (_, i) => `h${i}`).join(',')}/db`,
    ];
    for (const DATABASE_URL of bad) {
      expect(() => loadConfig({ DATABASE_URL }), DATABASE_URL).toThrow(ConfigError);
      expect(() => loadConfig({ DATABASE_URL }), DATABASE_URL).toThrow(/DATABASE_URL/);
    }
    expect(() => loadConfig({ DATABASE_READ_URL: 'postgres://u@a:1,b:x/db' })).toThrow(/DATABASE_READ_URL/);
  });

  it('should accept a host list in DATABASE_URL and DATABASE_READ_URL', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://u@a:1,b:2/db?target_session_attrs=read-write',
      DATABASE_READ_URL: 'postgres://u@b:2/db',
      READ_REPLICA_LAG_MAX_MS: '250',
      READ_REPLICA_LAG_POLICY: 'unavailable',
    });
    expect(config.database).toMatchObject({
      readUrl: 'postgres://u@b:2/db',
      readReplicaLagMaxMs: 250,
      readReplicaLagPolicy: 'unavailable',
    });
    expect(() => loadConfig({ READ_REPLICA_LAG_POLICY: 'replica' })).toThrow(/READ_REPLICA_LAG_POLICY/);
  });

  it('should either parse any string or refuse it with a PgUrlError, never another exception', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 80 }),
        fc.array(fc.string({ maxLength: 12 }), { maxLength: 4 }),
        (tail, hosts) => {
          for (const input of [tail, `postgres://u@${hosts.join(',')}/${tail}`]) {
            try {
              const parsed = parsePgHosts(input);
              expect(parsed.hosts.length).toBeGreaterThan(0);
            } catch (error) {
              expect((error as Error).name).toBe('PgUrlError');
            }
          }
        },
      ),
    );
  });
});
