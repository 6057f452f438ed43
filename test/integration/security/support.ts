// Private brokers for the security tests (scripts/kafka.sh in its TLS / SASL / three-node modes, on ports
// and in folders of their own), and the bank pipeline run over whatever security the config carries.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { type Instance, startInstance } from '../../../src/app/instance.ts';
import type { Config } from '../../../src/config/config.ts';
import { createLogger } from '../../../src/config/logger.ts';
import { kafkajsConnectionOptions } from '../../../src/kafka/security.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { expectedOutcomeCount, observe, pipelineViolations, quiet } from '../bank/pipeline.ts';
import { type WorkloadCommand, buildWorkload } from '../bank/workload.ts';

const run = promisify(execFile);
const SCRIPT = path.resolve('scripts/kafka.sh');

export interface BrokerOptions {
  /** Client port of node 1; the controller ports follow the client ports. */
  port: number;
  tls?: boolean;
  /** Whether the TLS listener asks clients for certificates (default none). */
  clientAuth?: 'none' | 'requested' | 'required';
  sasl?: boolean;
  nodes?: 1 | 3;
  /** SCRAM users created at format time: name → password. */
  users?: Record<string, string>;
}

export interface TestBroker {
  brokers: string[];
  dataDir: string;
  /** The generated CA (TLS modes). */
  caFile: string;
  /** The admin super user's password (SASL mode). */
  adminPassword: string;
  /** scripts/kafka.sh with this broker's settings, e.g. ["kill-node", "2"]. */
  script(args: string[], timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

/** Starts a private broker (or cluster); always call stop(), it also deletes the data folder. */
export async function startBroker(options: BrokerOptions): Promise<TestBroker> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-kafka-sec-'));
  const nodes = options.nodes ?? 1;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KAFKA_PORT: String(options.port),
    KAFKA_DATA_DIR: dataDir,
    KAFKA_NODES: String(nodes),
    KAFKA_TLS: options.tls ? '1' : '0',
    KAFKA_TLS_CLIENT_AUTH: options.clientAuth ?? 'none',
    KAFKA_SASL: options.sasl ? 'scram' : '',
    KAFKA_SASL_USERS: Object.entries(options.users ?? {})
      .map(([name, password]) => `${name}:${password}`)
      .join(','),
    KAFKA_HEAP: nodes === 1 ? '768m' : '512m',
    KAFKA_STOP_TIMEOUT_S: '20',
  };
  const script = async (args: string[], timeoutMs = 150_000) => {
    const { stdout } = await run('bash', [SCRIPT, ...args], { env, timeout: timeoutMs, maxBuffer: 8 * 1024 * 1024 });
    return stdout;
  };
  const broker: TestBroker = {
    brokers: Array.from({ length: nodes }, (_, i) => `127.0.0.1:${options.port + i}`),
    dataDir,
    caFile: path.join(dataDir, 'tls', 'ca.pem'),
    adminPassword: '',
    script,
    stop: async () => {
      await script(['stop'], 90_000).catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await script(['start']);
  } catch (error) {
    const log = await readFile(
      path.join(nodes === 1 ? dataDir : path.join(dataDir, 'node-1'), 'server.log'),
      'utf8',
    ).catch(() => '');
    await broker.stop();
    throw new Error(`the test broker did not start: ${(error as Error).message}\n${log.slice(-3000)}`, {
      cause: error,
    });
  }
  if (options.sasl)
    broker.adminPassword = (await readFile(path.join(dataDir, 'sasl', 'admin.password'), 'utf8')).trim();
  return broker;
}

export interface Upstream {
  send(topic: string, commands: Array<Pick<WorkloadCommand, 'key' | 'value' | 'partition'>>): Promise<void>;
  close(): Promise<void>;
}

/** An independent upstream producer: KafkaJS (its default partitioner is Java's), idempotent, acks=all. */
export async function connectUpstream(config: Config): Promise<Upstream> {
  const kafka = new Kafka({
    clientId: 'security-test-upstream',
    brokers: config.kafkaBrokers,
    ...kafkajsConnectionOptions(config.kafkaSecurity),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 10_000,
    // Enough to ride out a leader election after a broker loss (the controller notices within ~9 s).
    retry: { retries: 12, initialRetryTime: 300, maxRetryTime: 5000 },
  });
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  return {
    send: async (topic, commands) => {
      for (let i = 0; i < commands.length; i += 500) {
        const messages = commands.slice(i, i + 500).map((c) => ({
          key: c.key,
          value: c.value,
          ...(c.partition === undefined ? {} : { partition: c.partition }),
        }));
        await producer.send({ topic, messages, acks: -1 });
      }
    },
    close: () => producer.disconnect(),
  };
}

/** Connects, sends, disconnects. */
export async function sendWithKafkaJs(
  config: Config,
  topic: string,
  commands: Array<Pick<WorkloadCommand, 'key' | 'value' | 'partition'>>,
): Promise<void> {
  const upstream = await connectUpstream(config);
  try {
    await upstream.send(topic, commands);
  } finally {
    await upstream.close();
  }
}

/** Runs `openssl` (self-signed CAs and certificates that the broker does not trust). */
export async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd, timeout: 30_000 });
}

export interface PipelineRun {
  /** The processor's configuration (its principal, its security). */
  config: Config;
  /** The upstream producer's configuration (defaults to config). */
  upstream?: Config;
  /** Who reads the outcomes to check them (defaults to config). */
  reader?: Config;
  accounts: number;
  transfers: number;
  seed: number;
  prefix: string;
  /** A second instance (id `<instanceId>-b`) with this many standby replicas on both: the partitions are shared. */
  standbyPair?: number;
  /** Runs after half of the commands are sent (fault injection); the rest are sent afterwards. */
  midway?: () => Promise<void>;
  /** Runs once every command is sent, before waiting for the outcomes (repair). */
  afterSend?: () => Promise<void>;
  timeoutMs?: number;
}

/**
 * The bank topology in this process (no sink), fed by an independent KafkaJS upstream; returns every
 * violation of the workload's expectations (one outcome per command, DLQ, exact balances).
 */
/** Every instance keeps standbys, caught up with the active task's balances store (no ACL missing for them). */
async function standbyProblems(instances: Instance[]): Promise<string[]> {
  let problems: string[] = [];
  const deadline = Date.now() + 30_000;
  do {
    problems = [];
    for (const instance of instances) {
      const status = instance.streams.status();
      if (status.standby.length === 0) problems.push(`${instance.config.instanceId}: no standby task`);
      for (const partition of status.standby) {
        const active = instances.find((i) => i.streams.task(partition)?.state === 'RUNNING');
        const want = active?.streams.task(partition)?.stores.get('balances')?.position();
        const have = instance.streams.standby(partition)?.task.stores.get('balances')?.position();
        // The standby's checkpoint is past the transaction marker that ends the active task's last write.
        const behind = want === undefined || have === undefined || (want !== null && (have === null || have < want));
        if (behind)
          problems.push(
            `${instance.config.instanceId}: standby of partition ${partition} at ${have}, active at ${want}`,
          );
      }
    }
    if (problems.length > 0) await new Promise((resolve) => setTimeout(resolve, 500));
  } while (problems.length > 0 && Date.now() < deadline);
  return problems;
}

export async function runBankPipeline(run: PipelineRun): Promise<string[]> {
  const { config } = run;
  const upstream = run.upstream ?? config;
  const reader = run.reader ?? config;
  const workload = buildWorkload({
    accounts: run.accounts,
    transfers: run.transfers,
    seed: run.seed,
    prefix: run.prefix,
  });
  const paired =
    run.standbyPair === undefined
      ? [config]
      : [
          { ...config, standbyReplicas: run.standbyPair },
          { ...config, instanceId: `${config.instanceId}-b`, standbyReplicas: run.standbyPair },
        ];
  const instances = [];
  for (const c of paired)
    instances.push(await startInstance({ config: c, logger: createLogger('error'), sink: false }));
  const producer = await connectUpstream(upstream);
  try {
    await producer.send(config.topics.input, workload.setup);
    const half = Math.floor(workload.commands.length / 2);
    await producer.send(config.topics.input, workload.commands.slice(0, half));
    await run.midway?.();
    await producer.send(config.topics.input, workload.commands.slice(half));
    await run.afterSend?.();
    const expected = expectedOutcomeCount(workload);
    await waitFor(
      `${expected} outcomes and nothing in flight`,
      async () => quiet(await observe(reader), expected),
      run.timeoutMs ?? 90_000,
      1000,
    );
    // Late duplicates would show up now.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const problems = pipelineViolations(workload, await observe(reader));
    if (run.standbyPair !== undefined) problems.push(...(await standbyProblems(instances)));
    return problems;
  } finally {
    await producer.close();
    for (const instance of instances) await instance.close();
  }
}
