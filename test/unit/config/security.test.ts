import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/config.ts';
import { Secret } from '../../../src/config/secret.ts';
import { createTlsFixtures, type TlsFixtures } from './tls-fixtures.ts';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

let files: TlsFixtures;
beforeAll(() => {
  files = createTlsFixtures();
});
afterAll(() => files.remove());

const SASL = {
  KAFKA_SECURITY_PROTOCOL: 'SASL_SSL',
  KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
  KAFKA_SASL_USERNAME: 'bankstream',
};

describe('Kafka security configuration', () => {
  it('should use PLAINTEXT without TLS or SASL when nothing is set', () => {
    expect(loadConfig({}).kafkaSecurity).toEqual({ protocol: 'PLAINTEXT', tls: undefined, sasl: undefined });
  });

  it('should read the CA file at start and verify chain and host name by default when the protocol is SSL', () => {
    const { kafkaSecurity } = loadConfig({ KAFKA_SECURITY_PROTOCOL: 'ssl', KAFKA_SSL_CA_FILE: files.ca });

    expect(kafkaSecurity.protocol).toBe('SSL');
    expect(kafkaSecurity.tls).toMatchObject({
      rejectUnauthorized: true,
      verifyHostname: true,
      cert: undefined,
      key: undefined,
    });
    expect(kafkaSecurity.tls?.ca).toContain('-----BEGIN CERTIFICATE-----');
  });

  it('should take a client certificate with its key and the verification switches when they are set', () => {
    const { kafkaSecurity } = loadConfig({
      KAFKA_SECURITY_PROTOCOL: 'SSL',
      KAFKA_SSL_CERT_FILE: files.cert,
      KAFKA_SSL_KEY_FILE: files.key,
      KAFKA_SSL_REJECT_UNAUTHORIZED: 'false',
      KAFKA_SSL_VERIFY_HOSTNAME: '0',
    });

    expect(kafkaSecurity.tls?.cert).toContain('BEGIN CERTIFICATE');
    expect(kafkaSecurity.tls?.key).toBeInstanceOf(Secret);
    expect(kafkaSecurity.tls).toMatchObject({ ca: undefined, rejectUnauthorized: false, verifyHostname: false });
  });

  it.each([
    [
      { KAFKA_SECURITY_PROTOCOL: 'TLS' },
      'KAFKA_SECURITY_PROTOCOL',
      /expected PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL/,
    ],
    [
      { KAFKA_SECURITY_PROTOCOL: 'SSL', KAFKA_SSL_CA_FILE: '/nonexistent/ca.pem' },
      'KAFKA_SSL_CA_FILE',
      /cannot read \/nonexistent\/ca\.pem \(ENOENT\)/,
    ],
    [
      { KAFKA_SSL_CA_FILE: 'ca.pem' },
      'KAFKA_SSL_CA_FILE',
      /KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use it; set KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL/,
    ],
    [
      { KAFKA_SECURITY_PROTOCOL: 'SSL', KAFKA_SASL_USERNAME: 'x' },
      'KAFKA_SASL_USERNAME',
      /does not use it; set KAFKA_SECURITY_PROTOCOL to SASL_PLAINTEXT or SASL_SSL/,
    ],
    [
      { KAFKA_SECURITY_PROTOCOL: 'SSL', KAFKA_SSL_VERIFY_HOSTNAME: 'maybe' },
      'KAFKA_SSL_VERIFY_HOSTNAME',
      /expected true or false/,
    ],
    [
      { KAFKA_SECURITY_PROTOCOL: 'SASL_SSL' },
      'KAFKA_SASL_MECHANISM',
      /expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; required with KAFKA_SECURITY_PROTOCOL=SASL_SSL/,
    ],
    [{ KAFKA_SECURITY_PROTOCOL: 'SASL_SSL', KAFKA_SASL_MECHANISM: 'GSSAPI' }, 'KAFKA_SASL_MECHANISM', /got "GSSAPI"/],
    [{ KAFKA_SECURITY_PROTOCOL: 'SASL_SSL', KAFKA_SASL_MECHANISM: 'PLAIN' }, 'KAFKA_SASL_USERNAME', /is required/],
    [
      { ...SASL },
      'KAFKA_SASL_PASSWORD',
      /is required with KAFKA_SECURITY_PROTOCOL=SASL_SSL \(or KAFKA_SASL_PASSWORD_FILE\)/,
    ],
    [
      { ...SASL, KAFKA_SASL_PASSWORD: 'p', KAFKA_SASL_PASSWORD_FILE: '/x' },
      'KAFKA_SASL_PASSWORD',
      /either KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both/,
    ],
    [{ ...SASL, KAFKA_SASL_PASSWORD_FILE: '/nonexistent/password' }, 'KAFKA_SASL_PASSWORD_FILE', /cannot read/],
  ])('should fail with a ConfigError naming the setting when %j', (env, variable, message) => {
    const error = configError(env);

    expect(error.variable).toBe(variable);
    expect(error.message).toMatch(message);
  });

  it('should refuse a file that holds no certificate, a key without its certificate, a key of another certificate and an encrypted key', () => {
    const ssl = { KAFKA_SECURITY_PROTOCOL: 'SSL' };

    expect(configError({ ...ssl, KAFKA_SSL_CA_FILE: files.notPem }).message).toMatch(
      /KAFKA_SSL_CA_FILE: .*not\.pem holds no PEM certificate/,
    );
    expect(configError({ ...ssl, KAFKA_SSL_KEY_FILE: files.key }).message).toMatch(
      /KAFKA_SSL_CERT_FILE: is required with KAFKA_SSL_KEY_FILE/,
    );
    expect(configError({ ...ssl, KAFKA_SSL_CERT_FILE: files.cert }).message).toMatch(
      /KAFKA_SSL_KEY_FILE: is required with KAFKA_SSL_CERT_FILE/,
    );
    expect(
      configError({ ...ssl, KAFKA_SSL_CERT_FILE: files.cert, KAFKA_SSL_KEY_FILE: files.otherKey }).message,
    ).toMatch(/other\.key is not the private key of the certificate in KAFKA_SSL_CERT_FILE/);
    expect(
      configError({ ...ssl, KAFKA_SSL_CERT_FILE: files.cert, KAFKA_SSL_KEY_FILE: files.encryptedKey }).message,
    ).toMatch(/encrypted\.key is not an unencrypted PEM private key/);
  });

  it('should read the password file without its final newline, and refuse an empty one', () => {
    const passwordFile = path.join(files.dir, 'password');
    writeFileSync(passwordFile, 's3cret\n');

    const { kafkaSecurity } = loadConfig({ ...SASL, KAFKA_SASL_PASSWORD_FILE: passwordFile });

    expect(kafkaSecurity.sasl?.password.reveal()).toBe('s3cret');
    expect(kafkaSecurity.sasl).toMatchObject({ mechanism: 'SCRAM-SHA-512', username: 'bankstream' });
    expect(configError({ ...SASL, KAFKA_SASL_PASSWORD_FILE: files.empty }).message).toMatch(
      /KAFKA_SASL_PASSWORD_FILE: .*empty\.txt is empty/,
    );
  });
});

describe('secret redaction', () => {
  const password = 'hunter2-very-secret';

  it('should keep the SASL password and the private key out of JSON, util.inspect and pino logs of the config', () => {
    const config = loadConfig({
      ...SASL,
      KAFKA_SASL_PASSWORD: password,
      KAFKA_SSL_CERT_FILE: files.cert,
      KAFKA_SSL_KEY_FILE: files.key,
    });
    const key = config.kafkaSecurity.tls!.key!.reveal();
    let logged = '';
    const logger = pino(
      { level: 'info' },
      new Writable({ write: (chunk, _encoding, done) => ((logged += String(chunk)), done()) }),
    );

    logger.info({ config }, 'configuration');
    const printed = [
      JSON.stringify(config),
      inspect(config, { depth: 10 }),
      String(config.kafkaSecurity.sasl!.password),
      logged,
    ];

    for (const text of printed) {
      expect(text).not.toContain(password);
      expect(text).not.toContain(key.split('\n')[1]);
    }
    expect(logged).toContain('[redacted]');
    expect(inspect(config.kafkaSecurity.sasl!.password)).toBe('Secret([redacted])');
  });

  it('should never echo a password in a ConfigError', () => {
    const errors = [
      configError({ ...SASL, KAFKA_SASL_PASSWORD: password, KAFKA_SASL_PASSWORD_FILE: '/x' }),
      configError({ KAFKA_SASL_PASSWORD: password }),
      configError({ KAFKA_SECURITY_PROTOCOL: 'SASL_SSL', KAFKA_SASL_PASSWORD: password }),
    ];

    for (const error of errors) expect(`${error.message} ${error.stack}`).not.toContain(password);
  });
});

describe('PostgreSQL TLS configuration', () => {
  const url = (query: string) => `postgres://bank:pw@db.example:5432/bankstream${query}`;

  it('should connect without TLS when neither DATABASE_URL nor PGSSLMODE asks for it', () => {
    expect(loadConfig({}).postgresTls).toEqual({ mode: 'disable', ca: undefined, cert: undefined, key: undefined });
  });

  it('should take sslmode and sslrootcert from DATABASE_URL before PGSSLMODE and PGSSLROOTCERT', () => {
    const { postgresTls } = loadConfig({
      DATABASE_URL: url(`?sslmode=verify-ca&sslrootcert=${files.ca}`),
      PGSSLMODE: 'disable',
      PGSSLROOTCERT: '/nonexistent',
    });

    expect(postgresTls.mode).toBe('verify-ca');
    expect(postgresTls.ca).toContain('BEGIN CERTIFICATE');
  });

  it('should use PGSSLMODE, PGSSLROOTCERT, PGSSLCERT and PGSSLKEY when the URL has no TLS parameters', () => {
    const { postgresTls } = loadConfig({
      DATABASE_URL: url(''),
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: files.ca,
      PGSSLCERT: files.cert,
      PGSSLKEY: files.key,
    });

    expect(postgresTls).toMatchObject({ mode: 'verify-full' });
    expect(postgresTls.cert).toContain('BEGIN CERTIFICATE');
    expect(postgresTls.key).toBeInstanceOf(Secret);
  });

  it('should default to verify-full when a root certificate is given without a mode, and map node-postgres ssl=', () => {
    expect(loadConfig({ PGSSLROOTCERT: files.ca }).postgresTls.mode).toBe('verify-full');
    expect(loadConfig({ DATABASE_URL: url('?ssl=true') }).postgresTls.mode).toBe('verify-full');
    expect(loadConfig({ DATABASE_URL: url('?ssl=no-verify') }).postgresTls.mode).toBe('require');
    expect(loadConfig({ DATABASE_URL: url('?sslmode=verify-full&sslrootcert=system') }).postgresTls).toMatchObject({
      mode: 'verify-full',
      ca: undefined,
    });
  });

  it.each([
    [
      { DATABASE_URL: url('?sslmode=sometimes') },
      'DATABASE_URL',
      /sslmode: expected disable, allow, prefer, require, verify-ca, verify-full/,
    ],
    [{ PGSSLMODE: 'strict' }, 'PGSSLMODE', /got "strict"/],
    [{ PGSSLMODE: 'verify-ca' }, 'PGSSLMODE', /verify-ca needs a root certificate/],
    [
      { PGSSLMODE: 'verify-full', PGSSLROOTCERT: '/nonexistent/root.crt' },
      'PGSSLROOTCERT',
      /cannot read \/nonexistent\/root\.crt/,
    ],
    [
      { DATABASE_URL: url('?sslmode=disable&sslrootcert=/x') },
      'DATABASE_URL',
      /sslmode=disable connects without TLS, but DATABASE_URL names certificate files/,
    ],
    [
      { DATABASE_URL: url('?sslmode=require&sslrootcert=system') },
      'DATABASE_URL',
      /sslrootcert=system needs sslmode=verify-full/,
    ],
    [{ DATABASE_URL: url('?ssl=maybe') }, 'DATABASE_URL', /ssl: expected true, no-verify or false/],
  ])('should fail with a ConfigError naming the setting when %j', (env, variable, message) => {
    const error = configError(env);

    expect(error.variable).toBe(variable);
    expect(error.message).toMatch(message);
  });
});
