// The task manager's answer to a corrupted task: wipe the named stores, restore again; bounded.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { TaskCorruptedError } from '../../../src/runtime/errors.ts';
import type { StateManager } from '../../../src/runtime/state-manager.ts';
import type { StreamTask } from '../../../src/runtime/task.ts';
import { restoreWithRecovery } from '../../../src/runtime/task-manager.ts';

const log = pino({ level: 'silent' });

function task(partition: number, wiped: string[]): StreamTask {
  return {
    partition,
    id: `task-${partition}`,
    stores: new Map([
      ['a', {}],
      ['b', {}],
    ]),
    wipeStore: async (name: string) => {
      wiped.push(`${partition}/${name}`);
    },
  } as unknown as StreamTask;
}

/** A state manager whose restores throw the given errors in turn, then apply `records` (reported as progress). */
function stateManager(failures: unknown[], records: number): { state: StateManager; calls: () => number } {
  let calls = 0;
  const state = {
    restore: async (_tasks: StreamTask[], onProgress?: (records: number) => void) => {
      calls++;
      // Some records applied before the corruption is found still count.
      onProgress?.(1);
      const failure = failures.shift();
      if (failure) throw failure;
      onProgress?.(records);
      return { records, elapsedMs: 0 };
    },
  } as unknown as StateManager;
  return { state, calls: () => calls };
}

describe('restoreWithRecovery', () => {
  it('should wipe exactly the corrupted stores and restore again when a restore throws TaskCorruptedError', async () => {
    const wiped: string[] = [];
    const tasks = [task(0, wiped), task(1, wiped)];
    const corrupted = new TaskCorruptedError(new Map([[1, ['b']]]), 'checkpoint past the changelog end');
    const { state, calls } = stateManager([corrupted], 40);
    const restored = await restoreWithRecovery(state, tasks, log);
    expect(wiped).toEqual(['1/b']);
    expect(calls()).toBe(2);
    expect(restored.records).toBe(42);
  });

  it('should rethrow any other error without wiping anything', async () => {
    const wiped: string[] = [];
    const { state } = stateManager([new Error('broker gone')], 0);
    await expect(restoreWithRecovery(state, [task(0, wiped)], log)).rejects.toThrow('broker gone');
    expect(wiped).toEqual([]);
  });

  it('should give up after a bounded number of wipes when the state stays corrupted', async () => {
    const wiped: string[] = [];
    const always = Array.from({ length: 100 }, () => new TaskCorruptedError(new Map([[0, ['a']]]), 'truncated'));
    const { state, calls } = stateManager(always, 0);
    await expect(restoreWithRecovery(state, [task(0, wiped)], log)).rejects.toBeInstanceOf(TaskCorruptedError);
    // One task with two stores: at most two wipes per store, so five attempts.
    expect(calls()).toBe(5);
    expect(wiped.length).toBe(4);
  });

  it('should rethrow when the corrupted partition is not one of the tasks being restored', async () => {
    const { state } = stateManager([new TaskCorruptedError(new Map([[9, ['a']]]), 'x')], 0);
    await expect(restoreWithRecovery(state, [task(0, [])], log)).rejects.toBeInstanceOf(TaskCorruptedError);
  });
});
