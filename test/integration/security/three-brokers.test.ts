// A three-broker KRaft cluster on 127.0.0.1 (scripts/kafka.sh KAFKA_NODES=3): bankstream's topics get
// replication factor 3 and min.insync.replicas 2 from configuration, exactly-once processing works across
// brokers, and a broker SIGKILLed under load (then restarted) costs no command its one outcome.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Admin, ConfigResourceTypes } from '@platformatic/kafka';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { ensureTopics, plannedTopics } from '../../../src/ops/topics.ts';
import { prefixedEnv, uniquePrefix } from '../support/kafka.ts';
import { runBankPipeline, startBroker, type TestBroker } from './support.ts';

const PORT = 18292;

describe('three-broker cluster', () => {
  let cluster: TestBroker | undefined;
  let work = '';

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'bankstream-ha-'));
    cluster = await startBroker({ port: PORT, nodes: 3 });
  }, 240_000);

  afterAll(async () => {
    await cluster?.stop();
    await rm(work, { recursive: true, force: true });
  }, 120_000);

  function configFor(prefix: string) {
    return loadConfig(
      prefixedEnv(prefix, {
        PARTITIONS: '6',
        INSTANCE_ID: 'i0',
        STATE_DIR: path.join(work, prefix),
        KAFKA_BROKERS: cluster!.brokers.join(','),
        REPLICATION_FACTOR: '3',
        MIN_INSYNC_REPLICAS: '2',
      }),
    );
  }

  it('should create every topic with replication factor 3 and min.insync.replicas 2 and run the pipeline exactly once', async () => {
    const prefix = uniquePrefix('ha');
    const config = configFor(prefix);
    await ensureTopics(config);

    const admin = new Admin({ clientId: 'ha-check', bootstrapBrokers: config.kafkaBrokers });
    try {
      const names = plannedTopics(config).map((topic) => topic.name);
      const metadata = await admin.metadata({ topics: names, forceUpdate: true });
      const configs = await admin.describeConfigs({
        resources: names.map((name) => ({
          resourceType: ConfigResourceTypes.TOPIC,
          resourceName: name,
          configurationKeys: ['min.insync.replicas'],
        })),
      });
      for (const name of names) {
        const replicaCounts = metadata.topics.get(name)!.partitions.map((partition) => partition.replicas.length);
        expect({ name, replicaCounts: [...new Set(replicaCounts)] }).toEqual({ name, replicaCounts: [3] });
        const minIsr = configs
          .find((c) => c.resourceName === name)
          ?.configs.find((c) => c.name === 'min.insync.replicas')?.value;
        expect({ name, minIsr }).toEqual({ name, minIsr: '2' });
      }
    } finally {
      await admin.close();
    }

    expect(await runBankPipeline({ config, accounts: 12, transfers: 400, seed: 13, prefix })).toEqual([]);
  });

  it('should answer every command exactly once with exact balances when a broker is SIGKILLed under load and restarted', async () => {
    const prefix = uniquePrefix('hakill');
    const config = configFor(prefix);
    await ensureTopics(config);

    const violations = await runBankPipeline({
      config,
      accounts: 24,
      transfers: 3000,
      seed: 17,
      prefix,
      midway: async () => {
        await cluster!.script(['kill-node', '2']);
      },
      afterSend: async () => {
        await new Promise((resolve) => setTimeout(resolve, 3000));
        await cluster!.script(['start-node', '2']);
      },
      timeoutMs: 150_000,
    });

    expect(violations).toEqual([]);
  }, 300_000);
});
