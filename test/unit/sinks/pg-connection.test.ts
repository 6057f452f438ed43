import { describe, expect, it } from 'vitest';
import type { PostgresTlsConfig } from '../../../src/config/config.ts';
import { Secret } from '../../../src/config/secret.ts';
import {
  PgConnectError,
  connectPg,
  pgConnectionConfig,
  pgSsl,
  withoutTlsParameters,
} from '../../../src/sinks/pg-connection.ts';
import { freePortPair } from '../../helpers/pg-replica.ts';

const tls = (mode: PostgresTlsConfig['mode'], ca?: string): PostgresTlsConfig => ({
  mode,
  ca,
  cert: undefined,
  key: undefined,
});

describe('pgSsl', () => {
  it.each(['disable', 'allow', 'prefer'] as const)(
    'should connect without TLS for sslmode=%s (node-postgres cannot fall back)',
    (mode) => {
      expect(pgSsl(tls(mode))).toBe(false);
    },
  );

  it('should encrypt without verification for require, and verify the chain when a root certificate is given (libpq)', () => {
    expect(pgSsl(tls('require'))).toMatchObject({ rejectUnauthorized: false });
    const withRoot = pgSsl(tls('require', 'CA'));

    expect(withRoot).toMatchObject({ rejectUnauthorized: true, ca: 'CA' });
    expect(withRoot !== false && withRoot.checkServerIdentity?.('db', {} as never)).toBeUndefined();
  });

  it('should verify the chain only for verify-ca and chain plus host name for verify-full', () => {
    const verifyCa = pgSsl(tls('verify-ca', 'CA'));
    const verifyFull = pgSsl({ mode: 'verify-full', ca: undefined, cert: 'CERT', key: new Secret('KEY') });

    expect(verifyCa).toMatchObject({ rejectUnauthorized: true, ca: 'CA' });
    expect(verifyCa && typeof verifyCa.checkServerIdentity).toBe('function');
    expect(verifyFull).toMatchObject({ rejectUnauthorized: true, cert: 'CERT', key: 'KEY' });
    expect(verifyFull !== false && verifyFull.checkServerIdentity).toBeUndefined();
  });
});

describe('pgConnectionConfig', () => {
  it('should take the TLS parameters out of the URL, where node-postgres would apply its own rules', () => {
    const url = 'postgres://bank:pw@db:5432/bankstream?sslmode=verify-full&sslrootcert=%2Fca.pem&application_name=x';

    expect(withoutTlsParameters(url)).toBe('postgres://bank:pw@db:5432/bankstream?application_name=x');
    expect(withoutTlsParameters('postgres://db/bankstream')).toBe('postgres://db/bankstream');
    expect(pgConnectionConfig(url, tls('verify-full', 'CA'))).toEqual({
      connectionString: 'postgres://bank:pw@db:5432/bankstream?application_name=x',
      ssl: { minVersion: 'TLSv1.2', ca: 'CA', rejectUnauthorized: true },
    });
  });
});

describe('connectPg', () => {
  it('should fail with UNREACHABLE naming every host when no host of the list answers', async () => {
    const port = await freePortPair(59_000, 59_400);
    const error = await connectPg(
      `postgres://postgres@127.0.0.1:${port},127.0.0.1:${port + 1}/db?target_session_attrs=read-write`,
      undefined,
      { roundsMax: 2, backoffMinMs: 10 },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PgConnectError);
    expect((error as PgConnectError).code).toBe('UNREACHABLE');
    expect((error as PgConnectError).attempts.map((a) => a.address)).toEqual([
      `127.0.0.1:${port}`,
      `127.0.0.1:${port + 1}`,
    ]);
    expect((error as Error).message).toContain('no PostgreSQL host answered');
  });
});
