// Crash safety of dedup expiry: the process is killed (SIGKILL) while a background purge of an expired
// segment is part-way. On its own folder the task must still find every id inside the retention, forget
// the expired ones (the leftovers of the killed purge are invisible and purged after the restart), and
// the same when a fresh folder is restored from the changelog.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SegmentedKeyValueStore } from '../../../src/stores/segmented-store.ts';
import { LevelBankTask, OLD_IDS, RETENTION_MS, SEGMENT_MS, START_MS } from '../../fixtures/level-bank-task.ts';
import { killAll, spawnFixture } from '../../helpers/child.ts';

const CHILD = join(import.meta.dirname, '../../fixtures/expiry-crash-child.ts');
/** The child's clock when it was killed, give or take its steps' milliseconds. */
const AFTER_MS = START_MS + RETENTION_MS + SEGMENT_MS + 60_000;

let work: string;
const changelog = (): string => join(work, 'changelog.jsonl');

const expired = (key: string): boolean => SegmentedKeyValueStore.expiredKey(key, AFTER_MS, RETENTION_MS, SEGMENT_MS);

/** Steps expiry until its background purge is done (a step never waits for it; the test does). */
async function settleExpiry(task: LevelBankTask, clock: { now: number }): Promise<void> {
  for (let i = 0; i < 100; i++) {
    clock.now += 1;
    await task.run([]);
    const last = task.steps.at(-1);
    if (last !== undefined && !last.inFlight) return;
    await task.graph.idle();
  }
  throw new Error('expiry did not settle');
}

describe('dedup expiry killed while a purge runs', () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'bankstream-expiry-crash-'));
    const child = spawnFixture(CHILD, { STATE_DIR: join(work, 'state'), CHANGELOG_FILE: changelog() });
    await child.exited;
    expect(child.process.signalCode, child.output()).toBe('SIGKILL');
    expect(child.output()).toMatch(/killing with the purge part-way/);
  }, 120_000);

  afterAll(async () => {
    await killAll();
    await rm(work, { recursive: true, force: true });
  });

  test('should still deduplicate a retry inside the retention and forget the expired ids when it restarts on its own folder', async () => {
    // Its own changelog file: the restore test below replays what the child wrote, nothing of this test.
    const clock = { now: AFTER_MS };
    const task = await LevelBankTask.open(join(work, 'state'), join(work, 'changelog-after-restart.jsonl'), clock);
    try {
      // The killed purge left part of the expired segment on disk: no lookup names it.
      const leftover = (await task.transfersKeys()).filter(expired);
      expect(leftover.length).toBeGreaterThan(0);
      expect(leftover.length).toBeLessThan(OLD_IDS);
      await task.deposit(['young']);
      expect(task.completed()).toEqual([]);
      await task.deposit(['old-0', `old-${OLD_IDS - 1}`]);
      expect(task.completed()).toEqual(['old-0', `old-${OLD_IDS - 1}`]);
      // The first purge after the restart starts at segment 0: the leftovers go.
      await settleExpiry(task, clock);
      expect((await task.transfersKeys()).filter(expired)).toEqual([]);
      await task.deposit(['young', 'old-0']);
      expect(task.completed()).toEqual([]);
    } finally {
      await task.close();
    }
  });

  test('should still deduplicate a retry inside the retention and forget the expired ids when a fresh folder is restored from the changelog', async () => {
    const task = await LevelBankTask.open(join(work, 'restored'), changelog(), { now: AFTER_MS }, true);
    try {
      // Restore skipped the expired segment: nothing of it came back.
      const keys = await task.transfersKeys();
      expect(keys.filter(expired)).toEqual([]);
      expect(keys.length).toBeGreaterThan(0);
      await task.deposit(['young']);
      expect(task.completed()).toEqual([]);
      await task.deposit([`old-${OLD_IDS - 1}`]);
      expect(task.completed()).toEqual([`old-${OLD_IDS - 1}`]);
    } finally {
      await task.close();
    }
  });
});
