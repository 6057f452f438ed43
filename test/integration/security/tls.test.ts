// Kafka over TLS, on a private broker (scripts/kafka.sh, KAFKA_TLS=1) that requires client certificates:
// the bank pipeline runs with every client on TLS, and trust problems fail at start with clear messages.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInstance } from '../../../src/app/instance.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { createLogger } from '../../../src/config/logger.ts';
import { ensureTopics } from '../../../src/ops/topics.ts';
import { prefixedEnv, uniquePrefix } from '../support/kafka.ts';
import { openssl, runBankPipeline, startBroker, type TestBroker } from './support.ts';

const PORT = 18092;
const run = promisify(execFile);

describe('Kafka over TLS', () => {
  let broker: TestBroker | undefined;
  let work = '';

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'bankstream-tls-'));
    broker = await startBroker({ port: PORT, tls: true, clientAuth: 'required' });
  }, 180_000);

  afterAll(async () => {
    await broker?.stop();
    await rm(work, { recursive: true, force: true });
  }, 120_000);

  /** Client settings for the test broker: its CA, and the client certificate it requires. */
  function tlsEnv(extra: Record<string, string> = {}): Record<string, string> {
    const tls = path.join(broker!.dataDir, 'tls');
    return {
      KAFKA_BROKERS: broker!.brokers.join(','),
      KAFKA_SECURITY_PROTOCOL: 'SSL',
      KAFKA_SSL_CA_FILE: path.join(tls, 'ca.pem'),
      KAFKA_SSL_CERT_FILE: path.join(tls, 'client.pem'),
      KAFKA_SSL_KEY_FILE: path.join(tls, 'client.key'),
      ...extra,
    };
  }

  function configFor(prefix: string, extra: Record<string, string> = {}) {
    return loadConfig(
      prefixedEnv(prefix, { PARTITIONS: '4', INSTANCE_ID: 'i0', STATE_DIR: path.join(work, prefix), ...tlsEnv(extra) }),
    );
  }

  it('should run the bank pipeline with exactly one outcome per command when every client connects over mutual TLS', async () => {
    const prefix = uniquePrefix('tls');
    const config = configFor(prefix);
    await ensureTopics(config);

    const violations = await runBankPipeline({ config, accounts: 12, transfers: 400, seed: 5, prefix });

    expect(violations).toEqual([]);
  });

  it('should refuse to start with a message naming KAFKA_SSL_CA_FILE when the broker certificate is signed by another CA', async () => {
    const prefix = uniquePrefix('tlsca');
    await ensureTopics(configFor(prefix));
    await openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-keyout',
        'other-ca.key',
        '-out',
        'other-ca.pem',
        '-subj',
        '/CN=some other CA',
      ],
      work,
    );
    const config = configFor(prefix, { KAFKA_SSL_CA_FILE: path.join(work, 'other-ca.pem') });

    const started = startInstance({ config, logger: createLogger('silent'), sink: false });

    await expect(started).rejects.toMatchObject({ code: 'kafka_connection_failed' });
    await expect(started).rejects.toThrow(
      /TLS certificate is not trusted \(127\.0\.0\.1:18092\): SELF_SIGNED_CERT_IN_CHAIN.*KAFKA_SSL_CA_FILE must hold the CA that signed it/,
    );
    await expect(ensureTopics(config)).rejects.toThrow(/not trusted.*KAFKA_SSL_CA_FILE/);
  });

  it('should exit at start with a ConfigError naming KAFKA_SSL_CA_FILE when the CA file does not exist', async () => {
    const prefix = uniquePrefix('tlsmissing');
    const env = {
      ...process.env,
      ...prefixedEnv(prefix, tlsEnv({ KAFKA_SSL_CA_FILE: path.join(work, 'no-such-ca.pem') })),
    };

    const result = await run(
      process.execPath,
      ['--disable-warning=ExperimentalWarning', path.resolve('src/cli/main.ts'), 'start', '--no-sink'],
      { env, timeout: 30_000 },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );

    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/invalid configuration: KAFKA_SSL_CA_FILE: cannot read .*no-such-ca\.pem \(ENOENT\)/);
  });

  it('should refuse to start with a message naming KAFKA_SECURITY_PROTOCOL when a PLAINTEXT client meets the TLS listener', async () => {
    const prefix = uniquePrefix('tlsplain');
    const config = loadConfig(
      prefixedEnv(prefix, {
        PARTITIONS: '4',
        KAFKA_BROKERS: broker!.brokers.join(','),
        STATE_DIR: path.join(work, prefix),
      }),
    );

    await expect(ensureTopics(config)).rejects.toThrow(
      /listener requires TLS: set KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL \(it is PLAINTEXT\)/,
    );
  });

  it('should refuse the connection when the client presents no certificate to a broker that requires one', async () => {
    const prefix = uniquePrefix('tlsnocert');
    const config = loadConfig(
      prefixedEnv(prefix, {
        PARTITIONS: '4',
        KAFKA_BROKERS: broker!.brokers.join(','),
        KAFKA_SECURITY_PROTOCOL: 'SSL',
        KAFKA_SSL_CA_FILE: broker!.caFile,
        STATE_DIR: path.join(work, prefix),
      }),
    );

    await expect(ensureTopics(config)).rejects.toThrow(
      /closed the connection after the TLS handshake.*client certificate \(KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE\)/,
    );
  });
});
