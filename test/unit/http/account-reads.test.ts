// AccountQueries.readHere remembers local answers only as long as they are exactly what a new read gives:
// the same task's stores at the same changelog positions (fake stores here: a map and a position each).
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { AccountQueries } from '../../../src/http/accounts.ts';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import type { Metrics } from '../../../src/metrics/metrics.ts';
import type { InstanceDirectory } from '../../../src/cluster/directory.ts';
import type { StreamsView } from '../../../src/streams/status.ts';

class FakeStore {
  position_: bigint | null = 10n;
  readonly values = new Map<string, unknown>();
  reads = 0;
  async readCommittedAt(key: string): Promise<{ value: unknown; position: bigint | null }> {
    this.reads++;
    return { value: this.values.get(key), position: this.position_ };
  }
  position(): bigint | null {
    return this.position_;
  }
}

function fakeTask() {
  const accounts = new FakeStore();
  const balances = new FakeStore();
  const stores = new Map<string, FakeStore>([
    ['accounts', accounts],
    ['balances', balances],
  ]);
  return { state: 'RUNNING', stores, accounts, balances };
}

const row = (ownerId: string) => ({
  ownerId,
  currency: 'EUR',
  status: 'open',
  overdraftLimit: '0',
  openedAt: '2026-12-02T00:00:00.000Z',
});

function setup() {
  let task = fakeTask();
  const streams = {
    state: 'RUNNING',
    partitions: 4,
    task: () => task,
    standby: () => undefined,
  } as unknown as StreamsView;
  const queries = new AccountQueries({
    config: loadConfig({ INSTANCE_ID: 'i0' }),
    streams,
    directory: {} as InstanceDirectory,
    metrics: {} as Metrics,
    selfUrl: () => 'http://127.0.0.1:1',
  });
  return {
    queries,
    task: () => task,
    replaceTask: () => {
      task = fakeTask();
      return task;
    },
  };
}

describe('AccountQueries.readHere', () => {
  it('should reuse an answer while the positions stay, and read again once a store has moved', async () => {
    const { queries, task } = setup();
    task().accounts.values.set('a1', row('alice'));
    task().balances.values.set('a1', { balance: '100' });

    const first = await queries.readHere('a1')!;
    const again = await queries.readHere('a1')!;
    expect(first.view).toMatchObject({ balance: '1.00', position: { partition: partitionForKey('a1', 4) } });
    expect(JSON.parse(first.body)).toEqual(first.view);
    expect(again).toBe(first);
    expect(task().balances.reads).toBe(1);

    task().balances.values.set('a1', { balance: '250' });
    task().balances.position_ = 11n;
    const moved = await queries.readHere('a1')!;
    expect(moved.view.balance).toBe('2.50');
    expect(moved.view.position.balances).toBe('11');

    task().accounts.values.set('a1', { ...row('alice'), status: 'closed', closedAt: '2026-12-02T01:00:00.000Z' });
    task().accounts.position_ = 11n;
    expect((await queries.readHere('a1')!).view.status).toBe('closed');
  });

  it('should read again when the task was replaced, and refuse while the task is not running', async () => {
    const { queries, task, replaceTask } = setup();
    task().accounts.values.set('a1', row('alice'));
    const first = await queries.readHere('a1')!;

    const next = replaceTask();
    next.accounts.values.set('a1', row('bob'));
    // Same positions as the old task's stores, other stores: not reused.
    expect((await queries.readHere('a1')!).view.ownerId).toBe('bob');
    next.state = 'RESTORING';
    await expect(queries.readHere('a1')!).rejects.toMatchObject({ status: 503 });
    expect(first.view.ownerId).toBe('alice');
  });

  it('should not remember an answer read while a flush moved a position', async () => {
    const { queries, task } = setup();
    task().accounts.values.set('a1', row('alice'));
    task().balances.values.set('a1', { balance: '100' });
    const balances = task().balances;
    const read = balances.readCommittedAt.bind(balances);
    balances.readCommittedAt = async (key: string) => {
      const value = await read(key);
      balances.position_ = (balances.position_ ?? 0n) + 1n; // a flush lands during the read
      return value;
    };

    const first = await queries.readHere('a1')!;
    await queries.readHere('a1');
    expect(balances.reads).toBe(2);
    // The answer reports the position its value was read at, not the one the flush moved the store to.
    expect(first.view.position.balances).toBe('10');
  });

  it('should answer 404 through a rejection and remember nothing for an unknown account', async () => {
    const { queries, task } = setup();
    await expect(queries.readHere('nobody')!).rejects.toMatchObject({ status: 404 });
    await expect(queries.readHere('nobody')!).rejects.toMatchObject({ status: 404 });
    expect(task().accounts.reads).toBe(2);
  });
});
