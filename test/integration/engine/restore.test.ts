// A restore as the task manager runs it (StateManager + restoreWithRecovery) on the real broker: a store
// rebuilt from its changelog (pipelined fetches, read_committed, a checkpoint written with every batch),
// resumed from its checkpoint, and wiped when the changelog no longer holds it (TaskCorruptedError: a
// recreated topic, checkpoint past the end; a truncated one, offset out of range).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Admin } from '@platformatic/kafka';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/config/logger.ts';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { createReader, type Reader } from '../../../src/kafka/reader.ts';
import { signChangelogEntry } from '../../../src/kafka/record-mac.ts';
import {
  type ChangelogCheck,
  changelogVerifier,
  UnauthenticatedChangelogRecordError,
} from '../../../src/runtime/record-auth.ts';
import { StandbyTasks } from '../../../src/runtime/standby.ts';
import { StateManager } from '../../../src/runtime/state-manager.ts';
import { restoreWithRecovery } from '../../../src/runtime/task-manager.ts';
import { clusterKeysFromSecret } from '../../../src/config/cluster-key.ts';
import { TEST_CLUSTER_SECRET } from '../support/kafka.ts';
import { StreamTask } from '../../../src/runtime/task.ts';
import { Topology } from '../../../src/topology/topology.ts';
import { BROKERS, createTopics, deleteTopics, produce, uniqueName, waitFor } from '../../helpers/kafka.ts';

const log = createLogger('warn');
const CLUSTER_KEYS = clusterKeysFromSecret(TEST_CLUSTER_SECRET);
const topicsMade: string[] = [];
const dirs: string[] = [];
afterAll(async () => {
  await deleteTopics(topicsMade);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

interface Fixture {
  appId: string;
  changelog: string;
  dir: string;
}

async function fixture(compact = true): Promise<Fixture> {
  const appId = uniqueName('restore');
  const changelog = `${appId}-s-changelog`;
  await createTopics([{ name: changelog, partitions: 1, compact }]);
  topicsMade.push(changelog);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bankstream-restore-'));
  dirs.push(dir);
  return { appId, changelog, dir };
}

function topologyOf(f: Fixture): Topology {
  return new Topology()
    .addSource('in', { topics: [`${f.appId}-in`] })
    .addProcessor('p', () => ({ init() {}, process() {} }), 'in')
    .addStateStore({ name: 's' }, 'p');
}

function task(f: Fixture): StreamTask {
  return new StreamTask({
    topology: topologyOf(f),
    applicationId: f.appId,
    partition: 0,
    partitions: 1,
    dir: f.dir,
    partitionsOf: () => 1,
    partitionForKey,
    emit: () => {},
    nowMs: () => Date.now(),
  });
}

/** `count` versions of keys k0..k(keys-1): the last value of k<i> is the highest n with n % keys = i. */
async function write(topic: string, from: number, count: number, keys: number): Promise<void> {
  const messages = [];
  for (let n = from; n < from + count; n++)
    messages.push({ topic, partition: 0, key: Buffer.from(`k${n % keys}`), value: Buffer.from(JSON.stringify({ n })) });
  for (let i = 0; i < messages.length; i += 5000) await produce(messages.slice(i, i + 5000));
}

/** Like write(), but each record signed as the engine signs store s's changelog records; `forged` values at those n are unsigned. */
async function writeSigned(
  topic: string,
  from: number,
  count: number,
  keys: number,
  forged: ReadonlySet<number> = new Set(),
): Promise<void> {
  const messages = [];
  for (let n = from; n < from + count; n++) {
    const key = Buffer.from(`k${n % keys}`);
    const value = Buffer.from(JSON.stringify({ n: forged.has(n) ? 1_000_000 : n }));
    messages.push({
      topic,
      partition: 0,
      key,
      value,
      ...(forged.has(n) ? {} : { headers: signChangelogEntry(CLUSTER_KEYS, 's', 0, key, value) }),
    });
  }
  await produce(messages);
}

/** A reader built the way the engine builds its restore and standby readers (src/kafka/reader.ts). */
function testReader(clientId: string, group: string): Reader {
  return createReader({
    clientId,
    groupId: uniqueName(group),
    bootstrapBrokers: BROKERS,
    fetch: { maxWaitMs: 100, minBytes: 1, maxBytes: 4 * 1024 * 1024, partitionMaxBytes: 256 * 1024 },
  });
}

/** A restore as a starting instance runs it: its own client, a task opening the state folder. */
async function restored(
  f: Fixture,
  check?: ChangelogCheck,
): Promise<{ records: number; values: (number | undefined)[]; checkpoint: bigint | null }> {
  const { consumer, fetcher } = testReader('restore-test', 'restore');
  const t = task(f);
  await t.openStores();
  try {
    const state = new StateManager({
      applicationId: f.appId,
      topology: topologyOf(f),
      consumer,
      fetcher,
      log,
      catchUpMs: 2000,
      ...(check ? { check } : {}),
    });
    const { records } = await restoreWithRecovery(state, [t], log);
    const store = t.stores.get('s')!;
    const values = await Promise.all(
      Array.from(
        { length: 10 },
        async (_, i) => ((await store.readCommitted(`k${i}`)) as { n: number } | undefined)?.n,
      ),
    );
    return { records, values, checkpoint: await store.checkpoint() };
  } finally {
    await t.close();
    await consumer.close();
  }
}

describe('restore from changelogs', () => {
  it('should rebuild a store from its whole changelog in many fetches, then resume from its checkpoint', async () => {
    const f = await fixture();
    await write(f.changelog, 0, 30_000, 10);
    const first = await restored(f);
    expect(first.records).toBe(30_000);
    expect(first.values).toEqual(Array.from({ length: 10 }, (_, i) => 29_990 + i));
    expect(first.checkpoint).toBe(30_000n);

    await write(f.changelog, 30_000, 25, 10);
    const again = await restored(f);
    expect(again.records).toBe(25);
    expect(again.values[4]).toBe(30_024);
    expect(again.checkpoint).toBe(30_025n);
  });

  it('should wipe the store and restore from scratch when its checkpoint is past the end of a recreated changelog', async () => {
    const f = await fixture();
    await write(f.changelog, 0, 500, 10);
    expect((await restored(f)).checkpoint).toBe(500n);
    await deleteTopics([f.changelog]);
    await createTopics([{ name: f.changelog, partitions: 1, compact: true }]);
    await write(f.changelog, 0, 5, 5);
    const after = await restored(f);
    expect(after.checkpoint).toBe(5n);
    expect(after.values).toEqual([0, 1, 2, 3, 4, undefined, undefined, undefined, undefined, undefined]);
  });

  it('should wipe the store and restore from the earliest offset when the changelog was truncated past its checkpoint', async () => {
    // Retention (cleanup.policy delete or compact,delete) truncates; the broker refuses DeleteRecords on compact-only topics.
    const f = await fixture(false);
    await write(f.changelog, 0, 100, 10);
    expect((await restored(f)).checkpoint).toBe(100n);
    await write(f.changelog, 100, 900, 10);
    const admin = new Admin({ clientId: 'restore-test-admin', bootstrapBrokers: BROKERS });
    try {
      await admin.deleteRecords({ topics: [{ name: f.changelog, partitions: [{ partition: 0, offset: 600n }] }] });
    } finally {
      await admin.close();
    }
    const after = await restored(f);
    expect(after.checkpoint).toBe(1000n);
    expect(after.records).toBe(400);
    expect(after.values).toEqual(Array.from({ length: 10 }, (_, i) => 990 + i));
  });

  it('should stop at a forged changelog record, building nothing from it, and restore without it when the operator skips it', async () => {
    const f = await fixture();
    // Offsets 0..99 signed, 100 forged (k0 = 1,000,000, an unsigned record as anyone with write access could add), 101..109 signed.
    await writeSigned(f.changelog, 0, 110, 10, new Set([100]));
    const check = changelogVerifier(CLUSTER_KEYS, {}, log);
    const failure = await restored(f, check).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(UnauthenticatedChangelogRecordError);
    expect((failure as UnauthenticatedChangelogRecordError).message).toMatch(
      new RegExp(`${f.changelog}:0:100 of store s does not verify \\(missing_mac\\)`),
    );
    expect((failure as UnauthenticatedChangelogRecordError).offset).toBe(100n);
    const skipping = changelogVerifier(CLUSTER_KEYS, { changelogSkipRecords: new Set([`${f.changelog}:0:100`]) }, log);
    const after = await restored(f, skipping);
    expect(after.checkpoint).toBe(110n);
    expect(after.values).toEqual([90, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
    expect(after.values).not.toContain(1_000_000);
  });

  it('should restore a signed changelog with the check on, exactly as without it', async () => {
    const f = await fixture();
    await writeSigned(f.changelog, 0, 2000, 10);
    const after = await restored(f, changelogVerifier(CLUSTER_KEYS, {}, log));
    expect(after.records).toBe(2000);
    expect(after.values).toEqual(Array.from({ length: 10 }, (_, i) => 1990 + i));
  });

  it('should tail a signed changelog into a standby and drop the standby at a forged record', async () => {
    const f = await fixture();
    await writeSigned(f.changelog, 0, 50, 5);
    const { consumer, fetcher } = testReader('standby-test', 'standby');
    const standbys = new StandbyTasks({
      consumer,
      fetcher,
      log,
      changelogTopicOf: (store) => `${f.appId}-${store}-changelog`,
      createTask: () => task(f),
      check: changelogVerifier(CLUSTER_KEYS, {}, log),
    });
    try {
      await standbys.assign([0]);
      const caughtUp = async () => {
        const view = standbys.view(0);
        return view && (await view.task.stores.get('s')!.checkpoint()) === 50n ? view : undefined;
      };
      const view = await waitFor('the standby applied the signed records', caughtUp, 30_000, 100);
      expect(((await view.task.stores.get('s')!.readCommitted('k4')) as { n: number }).n).toBe(49);
      // A forged record (no MAC) after them: the standby stops applying and is dropped, its store never reading 1,000,000.
      await writeSigned(f.changelog, 50, 1, 5, new Set([50]));
      await waitFor(
        'the standby dropped',
        async () => (standbys.partitions().length === 0 ? true : undefined),
        30_000,
        100,
      );
    } finally {
      await standbys.close();
      await consumer.close();
    }
    const after = await restored(
      f,
      changelogVerifier(CLUSTER_KEYS, { changelogSkipRecords: new Set([`${f.changelog}:0:50`]) }, log),
    );
    expect(after.values.slice(0, 5)).toEqual([45, 46, 47, 48, 49]);
  });
});
