// The transfers store of the layout before segments (entries under their dedup key or bare
// transferId, changelog compact-only) is converted on start: restored as it is, still deduplicating,
// then swept into segments by the expiry steps, and restored again from the converted changelog.
import { afterEach, describe, expect, test } from 'vitest';
import { buildBankTopology } from '../../../src/bank/topology.ts';
import { dedupKey } from '../../../src/bank/stores.ts';
import type { OutputRecord } from '../../../src/topology/task-graph.ts';
import { TopologyTestDriver } from '../../../src/topology/test-driver.ts';
import { logicalEntries } from '../../../src/stores/segmented-store.ts';
import { DAY_MS, START_MS, TOPICS } from './harness.ts';

const PARTITIONS = 2;
const NOW_MS = START_MS + 10 * DAY_MS;

function rec(topic: string, partition: number, key: string, value: unknown): OutputRecord {
  return {
    topic,
    partition,
    key: Buffer.from(key),
    value: Buffer.from(JSON.stringify(value)),
    timestamp: START_MS,
    headers: {},
  };
}

let drivers: TopologyTestDriver[] = [];
afterEach(() => {
  for (const driver of drivers) driver.close();
  drivers = [];
});

function driverOver(changelog: (topic: string) => readonly OutputRecord[]): TopologyTestDriver {
  let clock = NOW_MS;
  const topology = buildBankTopology({
    topics: TOPICS,
    dedupRetentionMs: DAY_MS,
    punctuateIntervalMs: 1_000,
    restoreClock: () => clock,
  });
  const driver = new TopologyTestDriver(topology, { partitions: PARTITIONS, startWallClockMs: NOW_MS, changelog });
  clock = NOW_MS;
  drivers.push(driver);
  return driver;
}

async function deposit(driver: TopologyTestDriver, transferId: string, accountId: string): Promise<void> {
  const value = Buffer.from(JSON.stringify({ type: 'deposit', transferId, accountId, amount: '1', currency: 'EUR' }));
  await driver.pipeRaw(TOPICS.input, driver.partitionOf(accountId), Buffer.from(accountId), value);
}

function completedKeys(driver: TopologyTestDriver): string[] {
  return driver.records(TOPICS.completed).map((r) => r.key!.toString());
}

describe('dedup store migration', () => {
  test('should keep deduplicating every old-layout entry inside its retention and forget expired ones when it starts on the old layout and sweeps it', async () => {
    const probe = driverOver(() => []);
    const account = 'acc-1';
    const partition = probe.partitionOf(account);
    const changelogTopic = 'test-app-transfers-changelog';
    const old = [
      rec('test-app-accounts-changelog', partition, account, {
        ownerId: 'o',
        currency: 'EUR',
        overdraftLimit: '0',
        status: 'open',
        openedAt: new Date(START_MS).toISOString(),
      }),
      rec('test-app-balances-changelog', partition, account, { balance: '100', inFlight: '0' }),
      // Decided an hour ago under the per-account key: inside the 1-day retention.
      rec(changelogTopic, partition, dedupKey(account, 'recent'), {
        fingerprint: '["deposit","acc-1","1","EUR"]',
        status: 'completed',
        decidedAt: NOW_MS - 3_600_000,
      }),
      // Decided under the bare transferId by a version before per-account keys, also an hour ago.
      rec(changelogTopic, partition, 'bare-recent', {
        fingerprint: '["deposit","acc-1","1","EUR"]',
        status: 'completed',
        decidedAt: NOW_MS - 3_600_000,
      }),
      // Decided five days ago: past the retention.
      rec(changelogTopic, partition, dedupKey(account, 'ancient'), {
        fingerprint: '["deposit","acc-1","1","EUR"]',
        status: 'completed',
        decidedAt: NOW_MS - 5 * DAY_MS,
      }),
    ];
    probe.close();
    drivers = [];
    const byTopic = (topic: string) => old.filter((r) => r.topic === topic);
    const driver = driverOver(byTopic);

    // Before any sweep: the old entries are found where they are.
    await deposit(driver, 'recent', account);
    await deposit(driver, 'bare-recent', account);
    expect(completedKeys(driver)).toEqual([]);

    // Expiry steps sweep the old layout: live entries move into segments, expired ones are deleted.
    for (let i = 0; i < 6; i++) await driver.advanceWallClockTime(1_000);
    const physical = await driver.storeEntries('transfers');
    expect([...physical.keys()].filter((k) => k.startsWith('\u0000'))).toEqual([]);
    expect([...logicalEntries(physical).keys()].sort()).toEqual(['bare-recent', dedupKey(account, 'recent')].sort());

    // Restored from the converted changelog (old records and the sweep's moves and tombstones): still deduplicated.
    const converted = (topic: string) => [...byTopic(topic), ...driver.records(topic)];
    const restarted = driverOver(converted);
    await deposit(restarted, 'recent', account);
    await deposit(restarted, 'bare-recent', account);
    expect(completedKeys(restarted)).toEqual([]);
    await deposit(restarted, 'ancient', account);
    expect(completedKeys(restarted)).toEqual(['ancient']);
  });
});
