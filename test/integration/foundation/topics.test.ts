import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { changelogTopic } from '../../../src/topology/changelog.ts';
import {
  DEFAULT_STORE_NAMES,
  TopicLayoutError,
  describeTopics,
  ensureTopics,
  plannedTopics,
  verifyTopics,
} from '../../../src/ops/topics.ts';
import { createTestAdmin, deleteTopicsWithPrefix, prefixedEnv, uniquePrefix } from '../support/kafka.ts';
import { waitFor } from '../../helpers/kafka.ts';

const TEST_TIMEOUT_MS = 90_000;
const BIN = path.resolve(import.meta.dirname, '../../../bin/bankstream');
const run = promisify(execFile);

describe('topics', () => {
  const prefixes: string[] = [];
  afterEach(async () => {
    for (const prefix of prefixes.splice(0)) await deleteTopicsWithPrefix(prefix);
  });

  it(
    'should create every topic the first time and nothing when run a second time',
    async () => {
      const prefix = uniquePrefix('topics');
      prefixes.push(prefix);
      const config = loadConfig(prefixedEnv(prefix, { PARTITIONS: '3' }));

      const first = await ensureTopics(config);
      const second = await ensureTopics(config);

      const expected = plannedTopics(config).map((spec) => spec.name);
      expect(first.created.sort()).toEqual([...expected].sort());
      expect(second.created).toEqual([]);
      expect(second.existing.sort()).toEqual([...expected].sort());
      for (const state of second.topics) expect(state.partitions).toBe(3);
      const changelogs = second.topics.filter((state) => state.spec.role === 'changelog');
      expect(changelogs.map((state) => state.spec.name)).toEqual(
        DEFAULT_STORE_NAMES.map((store) => changelogTopic(prefix, store)),
      );
      for (const state of changelogs) expect(state.cleanupPolicy).toBe(state.spec.configs['cleanup.policy']);
      const transfers = changelogs.find((state) => state.spec.name === changelogTopic(prefix, 'transfers'));
      expect(transfers).toMatchObject({
        cleanupPolicy: 'compact,delete',
        retentionMs: String(2 * config.dedupRetentionMs),
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should alter a dedup changelog of the compact-only layout when topics are ensured again',
    async () => {
      const prefix = uniquePrefix('alter');
      prefixes.push(prefix);
      const config = loadConfig(prefixedEnv(prefix, { PARTITIONS: '2' }));
      const name = changelogTopic(prefix, 'transfers');
      const admin = createTestAdmin();
      await admin.createTopics({
        topics: [name],
        partitions: 2,
        replicas: 1,
        configs: [{ name: 'cleanup.policy', value: 'compact' }],
      });
      await admin.close();
      await waitFor(
        'the topic in the metadata',
        async () => ((await describeTopics(config)).find((t) => t.spec.name === name)?.exists ? true : undefined),
        30_000,
        100,
      );
      await expect(verifyTopics(config)).rejects.toThrow(
        /transfers-changelog has cleanup.policy=compact, expected compact,delete/,
      );

      const result = await ensureTopics(config);

      expect(result.altered).toEqual([name]);
      expect(result.topics.find((t) => t.spec.name === name)).toMatchObject({
        cleanupPolicy: 'compact,delete',
        retentionMs: String(2 * config.dedupRetentionMs),
      });
      expect((await ensureTopics(config)).altered).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should report the topics and their counts and create nothing when partition counts mismatch',
    async () => {
      const prefix = uniquePrefix('mismatch');
      prefixes.push(prefix);
      const config = loadConfig(prefixedEnv(prefix, { PARTITIONS: '3' }));
      const admin = createTestAdmin();
      await admin.createTopics({ topics: [config.topics.input], partitions: 2, replicas: 1 });
      await admin.close();
      // The broker serves metadata of a new topic a moment after creating it: wait, as an operator would have.
      await waitFor(
        'the topic in the metadata',
        async () =>
          (await describeTopics(config)).find((t) => t.spec.name === config.topics.input)?.exists ? true : undefined,
        30_000,
        100,
      );

      const error = await ensureTopics(config).catch((caught: unknown) => caught);

      expect(error).toBeInstanceOf(TopicLayoutError);
      expect((error as Error).message).toContain(`${config.topics.input}=2`);
      expect((error as Error).message).toContain('PARTITIONS=3');
      const states = await describeTopics(config);
      expect(states.filter((state) => state.exists).map((state) => state.spec.name)).toEqual([config.topics.input]);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'should exit non-zero naming the topics when the CLI meets a mismatch',
    async () => {
      const prefix = uniquePrefix('cli');
      prefixes.push(prefix);
      const env = { ...process.env, ...prefixedEnv(prefix, { PARTITIONS: '2' }) };
      await run(BIN, ['topics', 'create'], { env });

      const failure = await run(BIN, ['topics', 'create'], { env: { ...env, PARTITIONS: '4' } }).catch(
        (caught: unknown) => caught,
      );

      expect(failure).toMatchObject({ code: 1 });
      expect((failure as { stderr: string }).stderr).toContain(`${prefix}-credits=2`);
      expect((failure as { stderr: string }).stderr).toContain('PARTITIONS=4');
    },
    TEST_TIMEOUT_MS,
  );
});
