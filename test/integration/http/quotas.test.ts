// Per-principal quotas and the management split (issue 15), on a real instance with small limits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../../../src/app/instance.ts';
import { waitFor } from '../../helpers/kafka.ts';
import { adminToken } from '../support/tokens.ts';
import { DEV_SECRET, type Stack, call, createStack, login, waitReady } from './stack.ts';

let stack: Stack;
let instance: Instance;
let url: string;
const tokens: Record<string, string> = {};

async function openStream(accountId: string, token: string): Promise<{ status: number; body: unknown; close(): void }> {
  const controller = new AbortController();
  const response = await fetch(`${url}/v1/accounts/${accountId}/events`, {
    headers: { Authorization: `Bearer ${token}` },
    signal: controller.signal,
  });
  const body = response.status === 200 ? undefined : await response.json();
  return { status: response.status, body, close: () => controller.abort() };
}

const deposit = (token: string, id: string, wait = '') =>
  call(url, 'POST', `/v1/deposits${wait}`, {
    token,
    body: { transferId: id, accountId: 'quota-a', amount: '1.00', currency: 'EUR' },
  });

beforeAll(async () => {
  stack = await createStack('httpquota', {
    HTTP_SSE_STREAMS_PER_PRINCIPAL_MAX: '2',
    HTTP_WAITERS_PER_PRINCIPAL_MAX: '1',
    HTTP_COMMANDS_PER_PRINCIPAL_PER_S: '3',
    MANAGEMENT_PORT: '0',
  });
  instance = await stack.start({ INSTANCE_ID: 'quota-0' });
  url = instance.http!.url;
  await waitReady(url);
  for (const [id, role] of [
    ['teller1', 'teller'],
    ['teller2', 'teller'],
    ['teller3', 'teller'],
    ['alice', 'customer'],
    ['bob', 'customer'],
  ] as const) {
    await stack.addUser(id, role);
    tokens[id] = await login(url, id);
  }
  for (const [accountId, ownerId] of [
    ['quota-a', 'alice'],
    ['quota-b', 'bob'],
  ]) {
    const opened = await call(url, 'POST', '/v1/accounts?wait=15000', {
      token: tokens['teller1']!,
      body: { accountId, ownerId, currency: 'EUR' },
    });
    expect(opened.status, opened.text).toBe(201);
  }
});

afterAll(async () => {
  await stack?.cleanup();
});

describe('per-principal quotas', () => {
  it('should refuse a third event stream of one customer with the quota named while another customer opens one', async () => {
    const streams = [await openStream('quota-a', tokens['alice']!), await openStream('quota-a', tokens['alice']!)];
    const third = await openStream('quota-a', tokens['alice']!);
    const bobs = await openStream('quota-b', tokens['bob']!);

    expect(streams.map((s) => s.status)).toEqual([200, 200]);
    expect(third.status).toBe(429);
    expect(third.body).toMatchObject({ code: 'quota_exceeded', quota: 'sse_streams_per_principal', limit: 2 });
    expect(bobs.status).toBe(200);
    streams[0]!.close();
    const again = await waitFor(
      'a stream slot freed when a stream ends',
      async () => {
        const attempt = await openStream('quota-a', tokens['alice']!);
        return attempt.status === 200 ? attempt : undefined;
      },
      10_000,
      100,
    );
    for (const s of [again, streams[1]!, bobs]) s.close();
  });

  it('should refuse commands beyond the rate of one principal with Retry-After while another principal sends', async () => {
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => deposit(tokens['teller2']!, `rate-${i}`)));
    const refused = answers.filter((a) => a.status === 429);

    expect(answers.filter((a) => a.status === 202).length).toBeGreaterThanOrEqual(3);
    expect(answers.filter((a) => a.status === 202).length).toBeLessThanOrEqual(6);
    expect(refused.length).toBeGreaterThanOrEqual(4);
    expect(refused[0]!.body).toMatchObject({ code: 'quota_exceeded', quota: 'commands_per_second', limit: 3 });
    expect(Number(refused[0]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await deposit(tokens['teller1']!, 'rate-other')).status).toBe(202);
  });
});

describe('management split', () => {
  it('should say only up and ready on the public port and give the details and metrics only to an admin token', async () => {
    expect((await call(url, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await call(url, 'GET', '/readyz')).body).toEqual({ ready: true });
    expect((await call(url, 'GET', '/metrics')).status).toBe(401);
    expect((await call(url, 'GET', '/metrics', { token: tokens['teller1']! })).status).toBe(403);
    expect((await call(url, 'GET', '/readyz', { token: tokens['alice']! })).body).toEqual({ ready: true });
    const admin = await adminToken(DEV_SECRET);
    expect((await call(url, 'GET', '/metrics', { token: admin })).text).toContain(
      'bankstream_http_quota_exceeded_total',
    );
    expect((await call(url, 'GET', '/readyz', { token: admin })).body).toMatchObject({
      ready: true,
      routing: [{ instanceId: 'quota-0' }],
      sink: { state: 'running' },
    });
  });

  it('should serve the details and metrics without a token on the management port, and no API route there', async () => {
    const management = instance.http!.managementUrl!;
    expect(management).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    expect((await call(management, 'GET', '/readyz')).body).toMatchObject({
      ready: true,
      instanceId: 'quota-0',
      url,
      routing: [{ instanceId: 'quota-0', url }],
    });
    expect((await call(management, 'GET', '/healthz')).body).toMatchObject({ status: 'ok', instanceId: 'quota-0' });
    expect((await call(management, 'GET', '/metrics')).text).toMatch(/^bankstream_streams_tasks_running\{[^}]*\} 4$/m);
    expect((await call(management, 'GET', '/v1/accounts/quota-a', { token: tokens['teller1']! })).status).toBe(404);
    expect(
      (await call(management, 'POST', '/v1/auth/token', { body: { username: 'alice', password: 'x' } })).status,
    ).toBe(404);
  });
});

describe('waiters quota', () => {
  // Last: it stops the processor, so that a ?wait holds its slot until its timeout.
  it('should refuse a second ?wait of one principal while its first one waits, and accept the command without wait', async () => {
    await instance.streams.close();
    const first = deposit(tokens['teller3']!, 'wait-1', '?wait=4000');
    await waitFor(
      'the first waiter registered',
      async () => {
        const metrics = (await call(instance.http!.managementUrl!, 'GET', '/metrics')).text;
        return /^bankstream_http_outcome_waiters\{[^}]*\} 1$/m.test(metrics) ? true : undefined;
      },
      5000,
      50,
    );
    const second = await deposit(tokens['teller3']!, 'wait-2', '?wait=4000');

    expect(second.status).toBe(429);
    expect(second.body).toMatchObject({ code: 'quota_exceeded', quota: 'waiters_per_principal', limit: 1 });
    expect((await deposit(tokens['teller3']!, 'wait-3')).status).toBe(202);
    expect((await first).status).toBe(202);
  });
});
