// Kafka over SASL_SSL with SCRAM-SHA-512 and the StandardAuthorizer (scripts/kafka.sh KAFKA_TLS=1
// KAFKA_SASL=scram), every principal holding only the ACLs `bankstream acls` grants its role: the bank
// pipeline runs with exactly-once transactions, an upstream producer can write commands and nothing else,
// and a wrong password fails with a clear message that does not contain it.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import {
  Admin,
  AclOperations,
  AclPermissionTypes,
  Producer,
  ResourcePatternTypes,
  ResourceTypes,
} from '@platformatic/kafka';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInstance } from '../../../src/app/instance.ts';
import { type Config, loadConfig } from '../../../src/config/config.ts';
import { createTransactionalProducer } from '../../../src/kafka/clients.ts';
import { fetchStableOffsets } from '../../../src/kafka/committed-offsets.ts';
import { createReader } from '../../../src/kafka/reader.ts';
import { explainKafkaError, KafkaAccessError, kafkaConnectionOptions } from '../../../src/kafka/security.ts';
import {
  type RolePrincipals,
  aclBindings,
  applyAcls,
  defaultPrincipals,
  kafkaAclsCommands,
  plannedAcls,
} from '../../../src/ops/acls.ts';
import { ensureTopics } from '../../../src/ops/topics.ts';
import { prefixedEnv, uniquePrefix } from '../support/kafka.ts';
import { runBankPipeline, sendWithKafkaJs, startBroker, type TestBroker } from './support.ts';

const PORT = 18192;
const USERS = { bankstream: 'processor-secret-1', upstream: 'upstream-secret-2', nobody: 'nobody-secret-3' };
const run = promisify(execFile);

describe('Kafka over SASL_SSL/SCRAM with ACLs', () => {
  let broker: TestBroker | undefined;
  let work = '';

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'bankstream-sasl-'));
    broker = await startBroker({ port: PORT, tls: true, sasl: true, users: USERS });
  }, 180_000);

  afterAll(async () => {
    await broker?.stop();
    await rm(work, { recursive: true, force: true });
  }, 120_000);

  function saslEnv(
    prefix: string,
    username: string,
    password: string,
    extra: Record<string, string> = {},
  ): Record<string, string> {
    return prefixedEnv(prefix, {
      PARTITIONS: '4',
      INSTANCE_ID: 'i0',
      STATE_DIR: path.join(work, prefix),
      KAFKA_BROKERS: broker!.brokers.join(','),
      KAFKA_SECURITY_PROTOCOL: 'SASL_SSL',
      KAFKA_SSL_CA_FILE: broker!.caFile,
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      KAFKA_SASL_USERNAME: username,
      KAFKA_SASL_PASSWORD: password,
      ...extra,
    });
  }

  const principals = (prefix: string): RolePrincipals => ({
    ...defaultPrincipals(prefix),
    processor: 'User:bankstream',
    api: 'User:bankstream',
    upstream: 'User:upstream',
  });

  /** Topics and the ACLs of every role, created as the admin super user; returns the admin's config. */
  async function setup(prefix: string): Promise<Config> {
    const admin = loadConfig(saslEnv(prefix, 'admin', broker!.adminPassword));
    await ensureTopics(admin);
    await applyAcls(admin, plannedAcls(admin, principals(prefix)));
    return admin;
  }

  it('should run the bank pipeline exactly once when two processors with standbys and the upstream hold only their role ACLs', async () => {
    const prefix = uniquePrefix('sasl');
    const admin = await setup(prefix);
    const config = loadConfig(saslEnv(prefix, 'bankstream', USERS.bankstream));
    const upstream = loadConfig(saslEnv(prefix, 'upstream', USERS.upstream));

    // Two instances keeping standbys of each other: the standby client (changelog fetches, offsets) needs no more ACLs.
    const violations = await runBankPipeline({
      config,
      upstream,
      reader: admin,
      accounts: 12,
      transfers: 400,
      seed: 9,
      prefix,
      standbyPair: 1,
    });

    expect(violations).toEqual([]);
  });

  it('should refuse an upstream producer on the credits topic with TOPIC_AUTHORIZATION_FAILED while accepting its commands on the input topic', async () => {
    const prefix = uniquePrefix('saslup');
    await setup(prefix);
    const upstream = loadConfig(saslEnv(prefix, 'upstream', USERS.upstream));
    const command = { key: 'acc-1', value: Buffer.from('{"type":"close_account","accountId":"acc-1"}') };

    await sendWithKafkaJs(upstream, upstream.topics.input, [command]);
    const refused = await sendWithKafkaJs(upstream, upstream.topics.credits, [command]).then(
      () => undefined,
      (error: unknown) => error,
    );

    // KafkaJS wraps the broker's answer (a KafkaJSProtocolError) in a KafkaJSNonRetriableError.
    const protocolError = (refused as { cause?: { type?: string } } | undefined)?.cause ?? refused;
    expect(protocolError).toMatchObject({ type: 'TOPIC_AUTHORIZATION_FAILED' });
  });

  it('should need the AddPartitionsToTxn v3 downgrade of src/kafka/producer.ts for transactions when ACLs are enabled', async () => {
    const prefix = uniquePrefix('sasltxn');
    await setup(prefix);
    const config = loadConfig(saslEnv(prefix, 'bankstream', USERS.bankstream));
    const message = { topic: config.topics.completed, key: Buffer.from('k'), value: Buffer.from('v') };
    const connection = {
      bootstrapBrokers: config.kafkaBrokers,
      ...kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
    };

    // The client as shipped sends AddPartitionsToTxn v5, the broker-to-broker form that needs CLUSTER_ACTION.
    const stock = new Producer({
      ...connection,
      clientId: 'stock',
      idempotent: true,
      transactionalId: `${prefix}-stock`,
      acks: -1,
      retries: 0,
      strict: false,
      autocreateTopics: false,
    });
    const stockError = await (async () => {
      const transaction = await stock.beginTransaction();
      await transaction.send({ messages: [message] });
      await transaction.commit();
    })().then(
      () => undefined,
      (error: unknown) => error,
    );
    await stock.close(true).catch(() => undefined);
    expect(JSON.stringify(explainKafkaError(stockError)?.message ?? String(stockError))).toMatch(
      /CLUSTER_AUTHORIZATION_FAILED/,
    );

    const fixed = createTransactionalProducer({
      bootstrapBrokers: config.kafkaBrokers,
      clientId: 'fixed',
      transactionalId: `${prefix}-fixed`,
      security: kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
    });
    try {
      const transaction = await fixed.beginTransaction();
      await transaction.send({ messages: [message] });
      await expect(transaction.commit()).resolves.toBeUndefined();
    } finally {
      await fixed.close(true);
    }
  });

  it('should refuse to start with a message naming KAFKA_SASL_PASSWORD, and never show the password, when the password is wrong', async () => {
    const prefix = uniquePrefix('saslpw');
    await setup(prefix);
    const wrong = 'not-the-password-7f3a';
    const config = loadConfig(saslEnv(prefix, 'bankstream', wrong));
    let logged = '';
    const logger = pino(
      { level: 'trace' },
      new Writable({ write: (chunk, _encoding, done) => ((logged += String(chunk)), done()) }),
    );

    const error = await startInstance({ config, logger, sink: false }).then(
      () => undefined,
      (failure: unknown) => failure as Error,
    );

    expect(error).toMatchObject({ code: 'kafka_connection_failed' });
    expect(error!.message).toMatch(
      /SASL authentication failed \(127\.0\.0\.1:18192\): the broker refused KAFKA_SASL_USERNAME with KAFKA_SASL_PASSWORD \(or KAFKA_SASL_PASSWORD_FILE\) for SCRAM-SHA-512/,
    );
    expect(`${error!.stack} ${JSON.stringify(error)} ${logged}`).not.toContain(wrong);

    const cli = await run(
      process.execPath,
      ['--disable-warning=ExperimentalWarning', path.resolve('src/cli/main.ts'), 'topics', 'create'],
      { env: { ...process.env, ...saslEnv(prefix, 'bankstream', wrong) }, timeout: 60_000 },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (failure: { code: number; stderr: string }) => failure,
    );
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/SASL authentication failed/);
    expect(cli.stderr).not.toContain(wrong);
  });

  it('should refuse to start with a message pointing at the ACLs when the principal holds none', async () => {
    const prefix = uniquePrefix('saslnoacl');
    await setup(prefix);
    const config = loadConfig(saslEnv(prefix, 'nobody', USERS.nobody));

    const started = startInstance({ config, logger: pino({ level: 'silent' }), sink: false });

    await expect(started).rejects.toMatchObject({ code: 'kafka_not_authorized' });
    await expect(started).rejects.toThrow(
      /refused KAFKA_SASL_USERNAME=nobody: \w+_AUTHORIZATION_FAILED; grant the ACLs of its role/,
    );
  });

  it('should fail at once naming the ACLs, not after the stable-offsets wait, when a principal may not read the group offsets', async () => {
    const prefix = uniquePrefix('sasloffs');
    const admin = await setup(prefix);
    const config = loadConfig(saslEnv(prefix, 'nobody', USERS.nobody));
    const { consumer } = createReader({
      clientId: `${prefix}-offsets`,
      groupId: config.appId,
      bootstrapBrokers: config.kafkaBrokers,
      security: kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
      fetch: { maxWaitMs: 100, minBytes: 1, maxBytes: 1024 * 1024, partitionMaxBytes: 1024 * 1024 },
    });
    try {
      // Before errors were classified, every error was retried until timeoutMs, then reported as "not stable".
      const read = fetchStableOffsets(consumer, new Map([[admin.topics.input, [0, 1, 2, 3]]]), {
        clientId: `${prefix}-offsets`,
        connection: kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
        timeoutMs: 120_000,
        retryDelayMs: 50,
      });
      const error = await read.then(
        () => undefined,
        (failure: unknown) => failure as Error,
      );
      expect(error).toBeInstanceOf(KafkaAccessError);
      expect(error!.message).toMatch(/refused KAFKA_SASL_USERNAME=nobody: \w+_AUTHORIZATION_FAILED; grant the ACLs/);
      expect(error!.message).not.toMatch(/did not become stable/);
    } finally {
      await consumer.close(true);
    }
  }, 60_000);

  it('should print kafka-acls commands that the Kafka tool accepts and that grant what applyAcls grants', async () => {
    const prefix = uniquePrefix('saslprint');
    const admin = await setup(prefix);
    const grants = plannedAcls(admin, { ...principals(prefix), sink: 'User:printcheck' }, ['sink']);
    const env = {
      ...process.env,
      KAFKA_PORT: String(PORT),
      KAFKA_DATA_DIR: broker!.dataDir,
      KAFKA_TLS: '1',
      KAFKA_SASL: 'scram',
      KAFKA_SASL_USERS: Object.keys(USERS).join(','),
    };

    for (const line of kafkaAclsCommands(grants, `bash ${path.resolve('scripts/kafka.sh')} tool acls`)) {
      if (!line.startsWith('#')) await run('bash', ['-c', line], { env, timeout: 60_000 });
    }

    const client = new Admin({
      clientId: 'acl-check',
      bootstrapBrokers: admin.kafkaBrokers,
      ...kafkaConnectionOptions(admin.kafkaSecurity, admin.kafkaBrokers),
    });
    try {
      const described = await client.describeAcls({
        filter: {
          resourceType: ResourceTypes.ANY,
          resourceName: null,
          resourcePatternType: ResourcePatternTypes.ANY,
          principal: 'User:printcheck',
          host: null,
          operation: AclOperations.ANY,
          permissionType: AclPermissionTypes.ANY,
        },
      });
      const bindings = described
        .flatMap((resource) =>
          resource.acls.map((acl) => `${resource.resourceType}/${resource.resourceName}/${acl.operation}`),
        )
        .sort();
      expect(bindings).toEqual(
        aclBindings(grants)
          .map((acl) => `${acl.resourceType}/${acl.resourceName}/${acl.operation}`)
          .sort(),
      );
    } finally {
      await client.close();
    }
  });
});
