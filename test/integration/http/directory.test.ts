// The instance directory is authenticated (issue 15): records written to `<appId>-instances` by anyone who
// can write that topic, pointing at a listener this test runs on 127.0.0.1, are ignored and counted, no
// request reaches the listener, and proxied reads keep going to the real owners. Two instances on 4 partitions.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterKeysFromSecret } from '../../../src/config/cluster-key.ts';
import { instancesTopic } from '../../../src/config/config.ts';
import { signedRecordValue } from '../../../src/cluster/directory-records.ts';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { produce, waitFor } from '../../helpers/kafka.ts';
import { TEST_CLUSTER_SECRET } from '../support/kafka.ts';
import { adminToken } from '../support/tokens.ts';
import { DEV_SECRET, type Stack, call, createStack, login } from './stack.ts';

const PARTITIONS = 4;
const ALL = [0, 1, 2, 3];
let stack: Stack;
let urls: Record<'a' | 'b', string>;
let teller: string;
let trap: http.Server;
let trapUrl: string;
const trapped: string[] = [];

interface Readiness {
  ready: boolean;
  streams: { generationId: number; running: number[] };
  routing: Array<{ instanceId: string; url: string; generation: number; partitions: number[] }>;
}

async function readiness(url: string): Promise<Readiness> {
  return (await call(url, 'GET', '/readyz', { token: await adminToken(DEV_SECRET) })).body as Readiness;
}

/** Both instances ready and both routing tables naming one real owner per partition; the owners and the generation. */
async function settled(): Promise<{ owners: Map<number, 'a' | 'b'>; generation: number }> {
  return waitFor(
    'both instances ready with one routing table',
    async () => {
      const views = await Promise.all(Object.values(urls).map(readiness));
      if (!views.every((v) => v.ready && v.streams.running.length > 0)) return undefined;
      const generation = Math.max(...views.map((v) => v.streams.generationId));
      const owners = new Map<number, 'a' | 'b'>();
      for (const view of views) {
        const current = view.routing.filter(
          (r) => r.generation === generation && (r.instanceId === 'a' || r.instanceId === 'b'),
        );
        if (current.length !== 2) return undefined;
        for (const record of current) for (const p of record.partitions) owners.set(p, record.instanceId as 'a' | 'b');
      }
      return owners.size === PARTITIONS ? { owners, generation } : undefined;
    },
    60_000,
    200,
  );
}

function accountsPerPartition(): string[] {
  const ids: string[] = [];
  for (let i = 0; ids.length < PARTITIONS; i++) {
    const id = `dir-${i}`;
    if (!ids.some((other) => partitionForKey(other, PARTITIONS) === partitionForKey(id, PARTITIONS))) ids.push(id);
  }
  return ids;
}

/** Rejections counted by an instance, by reason. */
async function rejections(url: string): Promise<Record<string, number>> {
  const text = (await call(url, 'GET', '/metrics', { token: await adminToken(DEV_SECRET) })).text;
  const counts: Record<string, number> = {};
  for (const match of text.matchAll(
    /^bankstream_directory_records_rejected_total\{[^}]*reason="([a-z_]+)"[^}]*\} (\d+)$/gm,
  ))
    counts[match[1]!] = Number(match[2]);
  return counts;
}

/** Every account read through both instances (one of them proxies): all 200, served by the real owner. */
async function expectReadsServedByOwners(owners: Map<number, 'a' | 'b'>): Promise<void> {
  for (const accountId of accountsPerPartition()) {
    const owner = owners.get(partitionForKey(accountId, PARTITIONS))!;
    for (const url of Object.values(urls)) {
      const response = await call(url, 'GET', `/v1/accounts/${accountId}`, { token: teller });
      expect(response.status, response.text).toBe(200);
      expect(response.body).toMatchObject({
        accountId,
        balance: '5.00',
        servedBy: { instanceId: owner, url: urls[owner] },
      });
    }
  }
}

function forged(key: string, value: Buffer | string, headers?: Map<Buffer, Buffer>) {
  return {
    topic: instancesTopic(stack.prefix),
    key: Buffer.from(key),
    value: Buffer.isBuffer(value) ? value : Buffer.from(value),
    ...(headers ? { headers } : {}),
  };
}

beforeAll(async () => {
  trap = http.createServer((req, res) => {
    trapped.push(`${req.method} ${req.url} auth=${req.headers.authorization ?? ''}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => trap.listen({ host: '127.0.0.1', port: 0 }, resolve));
  trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}`;
  stack = await createStack('httpdir');
  const a = await stack.start({ INSTANCE_ID: 'a' });
  const b = await stack.start({ INSTANCE_ID: 'b' }, { sink: false });
  urls = { a: a.http!.url, b: b.http!.url };
  await stack.addUser('teller1', 'teller');
  teller = await login(urls.a, 'teller1');
  await settled();
  for (const accountId of accountsPerPartition()) {
    const opened = await call(urls.a, 'POST', '/v1/accounts?wait=15000', {
      token: teller,
      body: { accountId, ownerId: 'alice', currency: 'EUR' },
    });
    expect(opened.status, opened.text).toBe(201);
    const deposited = await call(urls.b, 'POST', '/v1/deposits?wait=15000', {
      token: teller,
      body: { transferId: `dep-${accountId}`, accountId, amount: '5.00', currency: 'EUR' },
    });
    expect(deposited.body).toMatchObject({ status: 'completed' });
  }
});

afterAll(async () => {
  await stack?.cleanup();
  trap?.closeAllConnections();
  await new Promise((resolve) => trap?.close(resolve));
});

describe('authenticated instance directory', () => {
  it('should ignore and count forged records when they point proxied reads at another listener, and keep proxying to the owners', async () => {
    const { owners } = await settled();
    const claim = (instanceId: string) => ({
      instanceId,
      url: trapUrl,
      generation: Number.MAX_SAFE_INTEGER,
      partitions: ALL,
      state: 'RUNNING',
      at: new Date().toISOString(),
    });
    const wrongKeys = clusterKeysFromSecret('not-the-cluster-secret-but-32-chars-long!!');
    const envelope = JSON.parse(signedRecordValue(wrongKeys, claim('a')).toString('utf8')) as Record<string, unknown>;
    await produce([
      // The record of the issue: the old, unsigned format, impersonating instance a.
      forged('a', JSON.stringify(claim('a'))),
      // Signed with a key that is not the cluster's (same key id), for a new instance id and for b.
      forged('evil', signedRecordValue(wrongKeys, claim('evil'))),
      forged('b', JSON.stringify({ ...envelope, record: JSON.stringify(claim('b')) })),
      // An unsigned tombstone trying to remove instance a.
      { topic: instancesTopic(stack.prefix), key: Buffer.from('a') },
    ]);

    for (const url of Object.values(urls)) {
      await waitFor(
        `${url} counted the forged records`,
        async () => {
          const counts = await rejections(url);
          return (counts['unsigned'] ?? 0) >= 2 && (counts['bad_mac'] ?? 0) >= 2 ? counts : undefined;
        },
        20_000,
        200,
      );
      const routing = (await readiness(url)).routing;
      expect(routing.map((r) => r.instanceId).sort()).toEqual(['a', 'b']);
      expect(routing.every((r) => r.url !== trapUrl)).toBe(true);
    }
    await expectReadsServedByOwners(owners);
    expect(trapped).toEqual([]);
  });

  it('should not let a signed claim win when its generation is beyond the group, its URL is outside INSTANCE_URL_ALLOW or it is a replay', async () => {
    const { owners, generation } = await settled();
    const keys = clusterKeysFromSecret(TEST_CLUSTER_SECRET);
    const before = await Promise.all(Object.values(urls).map(rejections));
    const at = new Date().toISOString();
    await produce([
      // Signed (as if by a compromised instance) and inside the allow-list, but from a generation the group never reached.
      forged(
        'ghost',
        signedRecordValue(keys, {
          instanceId: 'ghost',
          url: trapUrl,
          generation: Number.MAX_SAFE_INTEGER,
          partitions: ALL,
          state: 'RUNNING',
          at,
        }),
      ),
      // Signed, current generation (it would make every partition a tie), but its address is not an instance address.
      forged(
        'ghost2',
        signedRecordValue(keys, {
          instanceId: 'ghost2',
          url: trapUrl.replace('127.0.0.1', '127.0.0.2'),
          generation,
          partitions: ALL,
          state: 'RUNNING',
          at,
        }),
      ),
      // A replay of an older record of instance a, claiming everything in an older generation.
      forged(
        'a',
        signedRecordValue(keys, {
          instanceId: 'a',
          url: urls.a,
          generation: generation - 1,
          partitions: ALL,
          state: 'RUNNING',
          at: '2020-01-01T00:00:00.000Z',
        }),
      ),
    ]);

    for (const [i, url] of Object.values(urls).entries()) {
      await waitFor(
        `${url} refused the url and the replay`,
        async () => {
          const counts = await rejections(url);
          return (counts['url_not_allowed'] ?? 0) > (before[i]!['url_not_allowed'] ?? 0) &&
            (counts['replayed'] ?? 0) > (before[i]!['replayed'] ?? 0)
            ? counts
            : undefined;
        },
        20_000,
        200,
      );
      await waitFor(
        `${url} holds the ghost claim`,
        async () => ((await readiness(url)).routing.some((r) => r.instanceId === 'ghost') ? true : undefined),
        20_000,
        200,
      );
    }
    await expectReadsServedByOwners(owners);
    expect(trapped).toEqual([]);
  });
});
