import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { StateDirectoryCleaner } from '../../../src/runtime/state-cleaner.ts';
import { LevelTaskStore } from '../../../src/stores/level-store.ts';
import { bufferSerde } from '../../../src/stores/serdes.ts';

const DELAY_MS = 600_000;
const HOUR_S = 3600;

let appDir: string;
beforeEach(async () => {
  appDir = await mkdtemp(path.join(tmpdir(), 'bankstream-cleaner-'));
});
afterEach(async () => {
  await rm(appDir, { recursive: true, force: true });
});

/** A store folder with one file, last modified `ageS` seconds ago. */
async function storeFolder(instance: string, partition: string, ageS: number): Promise<string> {
  const dir = path.join(appDir, instance, partition, 'transfers');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, '000001.log');
  await writeFile(file, 'x');
  const at = Date.now() / 1000 - ageS;
  await utimes(file, at, at);
  return dir;
}

async function tree(): Promise<string[]> {
  const out: string[] = [];
  for (const instance of await readdir(appDir))
    for (const partition of await readdir(path.join(appDir, instance))) out.push(`${instance}/${partition}`);
  return out.sort();
}

describe('StateDirectoryCleaner', () => {
  test('should delete only unassigned folders unused for longer than the delay when it sweeps', async () => {
    await storeFolder('me', '0', HOUR_S);
    await storeFolder('me', '1', HOUR_S);
    await storeFolder('me', '2', 60);
    const cleaner = new StateDirectoryCleaner({ appDir, instanceId: 'me', cleanupDelayMs: DELAY_MS });

    const { deleted } = await cleaner.sweep(new Set([0]));

    expect(deleted).toEqual(['me/1']);
    expect(await tree()).toEqual(['me/0', 'me/2']);
  });

  test('should keep a folder that was in use here until the delay has passed since then, whatever its file times', async () => {
    await storeFolder('me', '3', HOUR_S);
    let now = Date.now();
    const cleaner = new StateDirectoryCleaner({ appDir, instanceId: 'me', cleanupDelayMs: DELAY_MS, clock: () => now });
    await cleaner.sweep(new Set([3]));
    now += DELAY_MS - 1;
    expect((await cleaner.sweep(new Set())).deleted).toEqual([]);
    now += 1;
    expect((await cleaner.sweep(new Set())).deleted).toEqual(['me/3']);
  });

  test('should delete an old INSTANCE_ID folder when it is unused, and keep one whose database another process has open', async () => {
    await storeFolder('old-id', '0', HOUR_S);
    const lockedDir = path.join(appDir, 'live-id', '0', 'transfers');
    const db = new ClassicLevel(lockedDir);
    await db.open();
    const cleaner = new StateDirectoryCleaner({ appDir, instanceId: 'me', cleanupDelayMs: 0 });
    try {
      expect((await cleaner.sweep(new Set())).deleted).toEqual(['old-id']);
      expect(await tree()).toEqual(['live-id/0']);
    } finally {
      await db.close();
    }
  });

  test('should wipe an unassigned recent folder far behind its changelog, so it is not advertised as warm, and keep one within the acceptable lag', async () => {
    for (const [partition, checkpoint] of [
      ['1', 100n],
      ['2', 19_995n],
    ] as const) {
      const store = await LevelTaskStore.open(path.join(appDir, 'me', partition, 'transfers'), {
        name: 'transfers',
        valueSerde: bufferSerde,
        logged: true,
        cacheEntriesMax: 0,
      });
      store.put('k', Buffer.from('v'));
      await store.flush(checkpoint);
      await store.close();
    }
    const ends = new Map([['transfers', 20_000n]]);
    const cleaner = new StateDirectoryCleaner({
      appDir,
      instanceId: 'me',
      cleanupDelayMs: DELAY_MS,
      recovery: { acceptableLagRecords: 10_000, changelogEndOffsets: async () => ends },
    });

    expect((await cleaner.sweep(new Set())).deleted).toEqual(['me/1']);
    // What the engine advertises as local state (kafka-streams.ts #memberInfo) is what is left on disk.
    expect(await tree()).toEqual(['me/2']);
  });
});
