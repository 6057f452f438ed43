// Micro benchmark of the store read and write paths: `node bench/stores.bench.ts`.
// Measures what DESIGN.md's Stores section argues from: awaited single gets against one getMany
// per batch, batched puts, and prefetch + synchronous get through LevelTaskStore.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { LevelTaskStore } from '../src/stores/level-store.ts';
import { jsonSerde } from '../src/stores/serdes.ts';

const KEYS_TOTAL = 100_000;
const BATCH_KEYS = 1_000;
const SINGLE_GETS = 20_000;

interface Account {
  accountId: string;
  ownerId: string;
  currency: string;
  balance: string;
  overdraftLimit: string;
}

const keyOf = (i: number) => `acc-${String(i).padStart(7, '0')}`;
const accountOf = (i: number): Account => ({
  accountId: keyOf(i),
  ownerId: `user-${i}`,
  currency: 'EUR',
  balance: '125.50',
  overdraftLimit: '0.00',
});
/** Batches of random keys, so reads do not walk the table in order. */
const randomBatches = (count: number) =>
  Array.from({ length: count }, () =>
    Array.from({ length: BATCH_KEYS }, () => keyOf(Math.floor(Math.random() * KEYS_TOTAL))),
  );

async function measure(label: string, operations: number, run: () => Promise<void>): Promise<number> {
  const started = process.hrtime.bigint();
  await run();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const perSecond = operations / seconds;
  console.log(`${label.padEnd(42)} ${Math.round(perSecond).toLocaleString('en').padStart(12)} ops/s`);
  return perSecond;
}

const dir = await mkdtemp(join(tmpdir(), 'bankstream-bench-'));
try {
  const serde = jsonSerde<Account>();
  const db = new ClassicLevel<string, Buffer>(join(dir, 'raw'), { keyEncoding: 'utf8', valueEncoding: 'buffer' });
  const put = await measure('db.batch put (1000 per batch)', KEYS_TOTAL, async () => {
    for (let start = 0; start < KEYS_TOTAL; start += BATCH_KEYS) {
      const operations = Array.from({ length: BATCH_KEYS }, (_, i) => ({
        type: 'put' as const,
        key: keyOf(start + i),
        value: serde.serialize(accountOf(start + i)),
      }));
      await db.batch(operations, { sync: false });
    }
  });
  const single = await measure('awaited db.get (one key at a time)', SINGLE_GETS, async () => {
    for (const key of randomBatches(SINGLE_GETS / BATCH_KEYS).flat()) await db.get(key);
  });
  const many = await measure('db.getMany (1000 keys per call)', 100 * BATCH_KEYS, async () => {
    for (const keys of randomBatches(100)) await db.getMany(keys);
  });
  await db.close();

  const options = { name: 'accounts', valueSerde: serde, logged: true, cacheEntriesMax: 0 };
  const store = await LevelTaskStore.open(join(dir, 'store'), options);
  await measure('store put + flush (1000 per flush)', KEYS_TOTAL, async () => {
    for (let start = 0; start < KEYS_TOTAL; start += BATCH_KEYS) {
      for (let i = start; i < start + BATCH_KEYS; i++) store.put(keyOf(i), accountOf(i));
      await store.flush(BigInt(start + BATCH_KEYS));
    }
  });
  const prefetched = await measure('store prefetch + get, cold cache', 100 * BATCH_KEYS, async () => {
    for (const keys of randomBatches(100)) {
      await store.prefetch(keys);
      for (const key of keys) store.get(key);
      store.abort();
    }
  });
  await store.close();
  const hot = await LevelTaskStore.open(join(dir, 'store'), { ...options, cacheEntriesMax: KEYS_TOTAL });
  await hot.prefetch(Array.from({ length: KEYS_TOTAL }, (_, i) => keyOf(i)));
  hot.abort();
  await measure('store prefetch + get, all keys cached', 100 * BATCH_KEYS, async () => {
    for (const keys of randomBatches(100)) {
      await hot.prefetch(keys);
      for (const key of keys) hot.get(key);
      hot.abort();
    }
  });
  await hot.close();
  console.log(
    `getMany / single get: ${(many / single).toFixed(1)}x; store prefetch+get (cold) / single get: ${(prefetched / single).toFixed(1)}x; batched put / single get: ${(put / single).toFixed(1)}x`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
