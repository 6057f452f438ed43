// Two in-process instances on 4 partitions: interactive queries are answered by the owner of the account's
// partition, directly or through one proxy hop, and the answer names the instance that read its store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { adminToken } from '../support/tokens.ts';
import { DEV_SECRET, type Stack, call, createStack, login } from './stack.ts';

const PARTITIONS = 4;
let stack: Stack;
let urls: Record<'a' | 'b', string>;
let teller: string;
let alice: string;
let bob: string;

interface Readiness {
  ready: boolean;
  streams: { generationId: number; running: number[] };
  routing: Array<{ instanceId: string; generation: number; partitions: number[] }>;
}

/** Both instances run their tasks and both routing tables name one owner per partition in the current generation. */
async function settled(): Promise<Map<number, string>> {
  return waitFor(
    'both instances ready with one routing table',
    async () => {
      const views = await Promise.all(
        Object.values(urls).map(
          async (url) => (await call(url, 'GET', '/readyz', { token: await adminToken(DEV_SECRET) })).body as Readiness,
        ),
      );
      if (!views.every((v) => v.ready && v.streams.running.length > 0)) return undefined;
      const generation = Math.max(...views.map((v) => v.streams.generationId));
      const owners = new Map<number, string>();
      for (const view of views) {
        const current = view.routing.filter((r) => r.generation === generation);
        if (current.length !== 2) return undefined;
        for (const record of current) for (const p of record.partitions) owners.set(p, record.instanceId);
      }
      return owners.size === PARTITIONS ? owners : undefined;
    },
    45_000,
    200,
  );
}

/** One account id per partition. */
function accountsPerPartition(): string[] {
  const ids: string[] = [];
  for (let i = 0; ids.length < PARTITIONS; i++) {
    const id = `route-${i}`;
    if (!ids.some((other) => partitionForKey(other, PARTITIONS) === partitionForKey(id, PARTITIONS))) ids.push(id);
  }
  return ids.sort((x, y) => partitionForKey(x, PARTITIONS) - partitionForKey(y, PARTITIONS));
}

beforeAll(async () => {
  stack = await createStack('httproute');
  const a = await stack.start({ INSTANCE_ID: 'a' });
  const b = await stack.start({ INSTANCE_ID: 'b' }, { sink: false });
  urls = { a: a.http!.url, b: b.http!.url };
  await Promise.all([
    stack.addUser('teller1', 'teller'),
    stack.addUser('alice', 'customer'),
    stack.addUser('bob', 'customer'),
  ]);
  [teller, alice, bob] = [await login(urls.a, 'teller1'), await login(urls.b, 'alice'), await login(urls.a, 'bob')];
});

afterAll(async () => {
  await stack?.cleanup();
});

describe('interactive query routing', () => {
  it('should return the same balance from either instance, one of them through the owner, naming the owner', async () => {
    const owners = await settled();
    expect(new Set(owners.values())).toEqual(new Set(['a', 'b']));
    const accounts = accountsPerPartition();
    for (const [i, accountId] of accounts.entries()) {
      const opened = await call(urls.b, 'POST', '/v1/accounts?wait=15000', {
        token: teller,
        body: { accountId, ownerId: 'alice', currency: 'EUR' },
      });
      expect(opened.status, opened.text).toBe(201);
      const deposited = await call(urls.a, 'POST', '/v1/deposits?wait=15000', {
        token: teller,
        body: { transferId: `dep-${accountId}`, accountId, amount: `${i + 1}0.00`, currency: 'EUR' },
      });
      expect(deposited.body).toMatchObject({ status: 'completed' });
    }

    for (const [i, accountId] of accounts.entries()) {
      const owner = owners.get(partitionForKey(accountId, PARTITIONS))!;
      const answers = await waitFor(
        `${accountId} read on both instances`,
        async () => {
          const both = await Promise.all([
            call(urls.a, 'GET', `/v1/accounts/${accountId}`, { token: alice }),
            call(urls.b, 'GET', `/v1/accounts/${accountId}`, { token: alice }),
          ]);
          return both.every((r) => r.status === 200 && (r.body as { balance: string }).balance === `${i + 1}0.00`)
            ? both
            : undefined;
        },
        10_000,
        100,
      );
      for (const answer of answers) {
        expect(answer.body).toMatchObject({
          accountId,
          balance: `${i + 1}0.00`,
          servedBy: { instanceId: owner, url: urls[owner as 'a' | 'b'] },
        });
        expect(answer.headers.get('x-bankstream-instance')).toBe(owner);
      }
      const proxied = answers.map((r) => r.headers.get('x-bankstream-proxied-via'));
      expect(proxied.filter((via) => via !== null)).toEqual([owner === 'a' ? 'b' : 'a']);
    }
  });

  it("should send the caller's verified principal, not its token, so that the owner refuses another customer", async () => {
    const owners = await settled();
    const accountId = accountsPerPartition()[0]!;
    const other = owners.get(partitionForKey(accountId, PARTITIONS)) === 'a' ? 'b' : 'a';

    const response = await call(urls[other], 'GET', `/v1/accounts/${accountId}`, { token: bob });

    expect(response.status).toBe(403);
    expect(response.body).toMatchObject({ code: 'forbidden' });
    expect(response.headers.get('x-bankstream-proxied-via')).toBe(other);
  });

  it('should answer 503 with Retry-After instead of proxying again when a forwarded request reaches a non-owner', async () => {
    const owners = await settled();
    const accountId = accountsPerPartition()[0]!;
    const other = owners.get(partitionForKey(accountId, PARTITIONS)) === 'a' ? 'b' : 'a';

    const response = await call(urls[other], 'GET', `/v1/accounts/${accountId}`, {
      token: alice,
      headers: { 'X-Bankstream-Forwarded': '1' },
    });

    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('1');
    expect(response.body).toMatchObject({
      code: 'partition_unavailable',
      type: 'https://bankstream.dev/problems/partition_unavailable',
    });
  });

  it('should serve every account from the remaining instance when the other one stops', async () => {
    const accounts = accountsPerPartition();
    await stack.instances[1]!.close();
    const statuses = new Set<number>();
    for (const [i, accountId] of accounts.entries()) {
      const answer = await waitFor(
        `${accountId} served by a`,
        async () => {
          const response = await call(urls.a, 'GET', `/v1/accounts/${accountId}`, { token: alice });
          statuses.add(response.status);
          return response.status === 200 ? response : undefined;
        },
        45_000,
        200,
      );
      expect(answer.body).toMatchObject({ balance: `${i + 1}0.00`, servedBy: { instanceId: 'a' } });
    }
    // While the partitions moved, the only other answer allowed is 503.
    expect([...statuses].filter((s) => s !== 200 && s !== 503)).toEqual([]);
  });
});
