// Stale reads routed to a standby (issue 7): three in-process instances with one standby per partition.
// When the owner of a partition cannot answer, an instance keeping no standby of it sends an
// allowStale=true read to the instance that does, which answers from its standby's stores with the lag;
// without allowStale the same read is a 503.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionForKey } from '../../../src/kafka/partitioner.ts';
import type { Instance } from '../../../src/app/instance.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { adminToken } from '../support/tokens.ts';
import { DEV_SECRET, type Stack, call, createStack, login } from './stack.ts';

const PARTITIONS = 4;
const ACCOUNT = 'stale-0';
let stack: Stack;
let instances: Instance[];
let teller: string;

beforeAll(async () => {
  stack = await createStack('httpstale', { STANDBY_REPLICAS: '1' });
  instances = [];
  for (const id of ['a', 'b', 'c']) instances.push(await stack.start({ INSTANCE_ID: id }, { sink: false }));
  await stack.addUser('teller1', 'teller');
  teller = await login(instances[0]!.http!.url, 'teller1');
});

afterAll(async () => {
  await stack?.cleanup();
});

describe('stale reads through the directory', () => {
  it('should send an allowStale read to the instance keeping a standby when the owner cannot answer', async () => {
    const partition = partitionForKey(ACCOUNT, PARTITIONS);
    const url = instances[0]!.http!.url;
    const opened = await call(url, 'POST', '/v1/accounts?wait=15000', {
      token: teller,
      body: { accountId: ACCOUNT, ownerId: 'alice', currency: 'EUR' },
    });
    expect(opened.status, opened.text).toBe(201);
    const deposited = await call(url, 'POST', '/v1/deposits?wait=15000', {
      token: teller,
      body: { transferId: 'stale-dep', accountId: ACCOUNT, amount: '12.34', currency: 'EUR' },
    });
    expect(deposited.body).toMatchObject({ status: 'completed' });

    // Every instance runs its tasks, and the partition's owner and standby holder are known to all.
    const roles = await waitFor(
      'owner and standby of the partition, caught up',
      async () => {
        const owner = instances.find((i) => i.streams.task(partition)?.state === 'RUNNING');
        const holder = instances.find((i) => i.streams.standby(partition)?.lagRecords === 0n);
        const third = instances.find((i) => i !== owner && i !== holder);
        if (!owner || !holder || !third || !instances.every((i) => i.streams.status().state === 'RUNNING'))
          return undefined;
        const routing = third.http!.url;
        const ready = (await call(routing, 'GET', '/readyz', { token: await adminToken(DEV_SECRET) })).body as {
          routing: Array<{ instanceId: string; standby?: number[] }>;
        };
        const known = ready.routing.some(
          (r) => r.instanceId === holder.config.instanceId && (r.standby ?? []).includes(partition),
        );
        const standbyBalance = await holder.streams
          .standby(partition)!
          .task.stores.get('balances')!
          .readCommitted(ACCOUNT);
        return known && standbyBalance !== undefined ? { owner, holder, third } : undefined;
      },
      60_000,
      200,
    );

    // The owner's API goes away (its tasks keep running): the directory no longer names an owner.
    await roles.owner.http!.close();
    const asked = roles.third.http!.url;
    const fresh = await waitFor(
      'no owner named any more',
      async () => {
        const response = await call(asked, 'GET', `/v1/accounts/${ACCOUNT}`, { token: teller });
        return response.status === 503 ? response : undefined;
      },
      30_000,
      200,
    );
    expect(fresh.headers.get('retry-after')).not.toBeNull();

    const stale = await call(asked, 'GET', `/v1/accounts/${ACCOUNT}?allowStale=true`, { token: teller });
    expect(stale.status, stale.text).toBe(200);
    expect(stale.body).toMatchObject({
      accountId: ACCOUNT,
      balance: '12.34',
      servedBy: { instanceId: roles.holder.config.instanceId },
      stale: { standby: true, lagRecords: '0' },
    });
    expect(stale.headers.get('x-bankstream-standby-lag')).toBe('0');
    expect(stale.headers.get('x-bankstream-proxied-via')).toBe(roles.third.config.instanceId);
  });
});
