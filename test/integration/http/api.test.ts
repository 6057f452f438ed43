// The HTTP API of one in-process instance on the real broker and a real (throwaway) PostgreSQL database.
import { SignJWT } from 'jose';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../helpers/kafka.ts';
import { adminToken } from '../support/tokens.ts';
import { describeHolds } from './holds-cases.ts';
import { DEV_SECRET, type Stack, call, createStack, login, waitReady } from './stack.ts';

let stack: Stack;
let url: string;
let teller: string;
let alice: string;
let bob: string;
let admin: string;

type Json = Record<string, unknown>;
const eur = (accountId: string, ownerId: string) => ({ accountId, ownerId, currency: 'EUR' });

async function openAccount(accountId: string, ownerId: string): Promise<void> {
  const response = await call(url, 'POST', '/v1/accounts?wait=10000', { token: teller, body: eur(accountId, ownerId) });
  expect(response.status, response.text).toBe(201);
}

async function deposit(transferId: string, accountId: string, amount: string): Promise<Json> {
  const response = await call(url, 'POST', '/v1/deposits?wait=10000', {
    token: teller,
    body: { transferId, accountId, amount, currency: 'EUR' },
  });
  expect(response.status, response.text).toBe(200);
  return response.body as Json;
}

async function balanceOf(accountId: string, token = teller): Promise<string> {
  const response = await call(url, 'GET', `/v1/accounts/${accountId}`, { token });
  expect(response.status, response.text).toBe(200);
  return (response.body as { balance: string }).balance;
}

/** The stores are written right after the commit that made the outcome visible: allow those milliseconds. */
async function expectBalance(accountId: string, expected: string, token = teller): Promise<void> {
  await waitFor(
    `balance ${expected} of ${accountId}`,
    async () => (await balanceOf(accountId, token)) === expected || undefined,
    5000,
    20,
  );
}

beforeAll(async () => {
  stack = await createStack('httpapi');
  url = (await stack.start({ INSTANCE_ID: 'api-0' })).http!.url;
  await Promise.all([
    stack.addUser('teller1', 'teller'),
    stack.addUser('alice', 'customer'),
    stack.addUser('bob', 'customer'),
    stack.addUser('admin1', 'admin'),
  ]);
  await waitReady(url);
  [teller, alice, bob, admin] = [
    await login(url, 'teller1'),
    await login(url, 'alice'),
    await login(url, 'bob'),
    await login(url, 'admin1'),
  ];
  await openAccount('alice-1', 'alice');
  await openAccount('bob-1', 'bob');
});

afterAll(async () => {
  await stack?.cleanup();
});

describe('authentication', () => {
  it('should issue a bearer token when the password is right and answer 401 when it is wrong', async () => {
    const good = await call(url, 'POST', '/v1/auth/token', {
      body: { username: 'alice', password: 'correct horse battery staple' },
    });
    const wrong = await call(url, 'POST', '/v1/auth/token', { body: { username: 'alice', password: 'guess' } });
    const unknown = await call(url, 'POST', '/v1/auth/token', { body: { username: 'mallory', password: 'guess' } });

    expect(good.status).toBe(200);
    expect(good.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, role: 'customer' });
    expect(good.headers.get('cache-control')).toBe('no-store');
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ code: 'invalid_credentials' });
    expect(unknown.body).toEqual({ ...(wrong.body as Json), requestId: (unknown.body as Json)['requestId'] });
  });

  it('should answer 401 when the token is missing, forged or expired', async () => {
    const claims = (exp: number) =>
      new SignJWT({ role: 'admin' })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('admin1')
        .setIssuer('bankstream')
        .setAudience('bankstream-api')
        .setExpirationTime(exp);
    const expired = await claims(Math.floor(Date.now() / 1000) - 3600).sign(new TextEncoder().encode(DEV_SECRET));
    const forged = await claims(Math.floor(Date.now() / 1000) + 3600).sign(
      new TextEncoder().encode('an-attacker-secret-of-thirty-two-chars!!'),
    );

    for (const token of [undefined, expired, forged, 'not.a.jwt']) {
      const response = await call(url, 'GET', '/v1/accounts/alice-1', token === undefined ? {} : { token });
      expect(response.status, String(token)).toBe(401);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
      expect(response.headers.get('www-authenticate')).toContain('Bearer');
    }
  });

  it('should answer 403 when a customer reads or debits an account of another customer', async () => {
    const read = await call(url, 'GET', '/v1/accounts/bob-1', { token: alice });
    const debit = await call(url, 'POST', '/v1/transfers', {
      token: alice,
      body: { transferId: 'steal-1', from: 'bob-1', to: 'alice-1', amount: '1.00', currency: 'EUR' },
    });
    const history = await call(url, 'GET', '/v1/accounts/bob-1/transfers', { token: alice });
    const deposit = await call(url, 'POST', '/v1/deposits', {
      token: alice,
      body: { transferId: 'self-dep', accountId: 'alice-1', amount: '1.00', currency: 'EUR' },
    });
    const open = await call(url, 'POST', '/v1/accounts', { token: alice, body: eur('alice-2', 'alice') });

    for (const response of [read, debit, history, deposit, open])
      expect(response.body).toMatchObject({ status: 403, code: 'forbidden' });
    expect(await balanceOf('alice-1', alice)).toMatch(/^\d+\.\d{2}$/);
  });
});

describe('money commands', () => {
  it('should complete deposits and transfers with ?wait and read the balances back from the stores', async () => {
    await openAccount('e2e-a', 'alice');
    await openAccount('e2e-b', 'bob');
    const deposited = await deposit('e2e-dep-1', 'e2e-a', '100');
    const transfer = await call(url, 'POST', '/v1/transfers?wait=10000', {
      token: alice,
      body: { transferId: 'e2e-t-1', from: 'e2e-a', to: 'e2e-b', amount: '30.25', currency: 'EUR', reference: 'rent' },
    });
    const overdraw = await call(url, 'POST', '/v1/transfers?wait=10000', {
      token: alice,
      headers: { 'Idempotency-Key': 'e2e-t-2' },
      body: { from: 'e2e-a', to: 'e2e-b', amount: '1000.00', currency: 'EUR' },
    });
    const withdrawal = await call(url, 'POST', '/v1/withdrawals?wait=10000', {
      token: teller,
      body: { transferId: 'e2e-w-1', accountId: 'e2e-b', amount: '0.25', currency: 'EUR' },
    });

    expect(deposited).toMatchObject({ transferId: 'e2e-dep-1', status: 'completed', amount: '100.00' });
    expect(transfer.status).toBe(200);
    expect(transfer.headers.get('location')).toBe('/v1/transfers/e2e-t-1?account=e2e-a');
    expect(transfer.body).toMatchObject({
      transferId: 'e2e-t-1',
      status: 'completed',
      from: 'e2e-a',
      to: 'e2e-b',
      amount: '30.25',
      reference: 'rent',
    });
    expect(overdraw.body).toMatchObject({ transferId: 'e2e-t-2', status: 'failed', code: 'insufficient_funds' });
    expect(withdrawal.body).toMatchObject({ status: 'completed' });
    await expectBalance('e2e-a', '69.75', alice);
    const a = await call(url, 'GET', '/v1/accounts/e2e-a', { token: alice });
    expect(a.body).toMatchObject({
      accountId: 'e2e-a',
      ownerId: 'alice',
      currency: 'EUR',
      status: 'open',
      balance: '69.75',
      servedBy: { instanceId: 'api-0' },
    });
    expect(a.headers.get('x-bankstream-instance')).toBe('api-0');
    expect(BigInt((a.body as { position: { balances: string } }).position.balances)).toBeGreaterThan(0n);
    await expectBalance('e2e-b', '30.00');
  });

  it('should answer a balance read the same on the fast path as through the Koa route, errors through Koa', async () => {
    await openAccount('fast-a', 'alice');
    await deposit('fast-dep', 'fast-a', '12.34');
    await expectBalance('fast-a', '12.34', alice);
    const read = (path: string, token = alice) =>
      call(url, 'GET', path, { token, headers: { 'X-Request-Id': 'fast-req' } });
    // The token is remembered now: no query string takes the fast path; ?allowStale=false and a trailing
    // slash take the Koa route, which answers the same read.
    const fast = await read('/v1/accounts/fast-a');
    const routed = await read('/v1/accounts/fast-a?allowStale=false');
    const slash = await read('/v1/accounts/fast-a/');
    const headersOf = (response: typeof fast) =>
      [...response.headers].filter(([name]) => name !== 'date').sort(([a], [b]) => a.localeCompare(b));

    expect(fast.status).toBe(200);
    expect(fast.body).toMatchObject({ accountId: 'fast-a', ownerId: 'alice', balance: '12.34' });
    expect(routed.body).toEqual(fast.body);
    expect(slash.body).toEqual(fast.body);
    expect(headersOf(fast)).toEqual(headersOf(routed));
    expect(fast.headers.get('x-request-id')).toBe('fast-req');
    // A remembered answer is not reused once the stores have moved: the next deposit is seen.
    await deposit('fast-dep-2', 'fast-a', '1.00');
    await expectBalance('fast-a', '13.34', alice);
    // Answers that are not a plain local success come from the Koa route, with remembered tokens too.
    expect((await read('/v1/accounts/bob-1')).body).toMatchObject({ status: 403, code: 'forbidden' });
    expect((await read('/v1/accounts/fast-nobody', teller)).body).toMatchObject({
      status: 404,
      code: 'account_not_found',
    });
  });

  it('should answer the first outcome when a transferId is sent again, and 409 when its fields differ', async () => {
    await openAccount('dup-a', 'alice');
    const first = await deposit('dup-1', 'dup-a', '5.00');
    const again = await call(url, 'POST', '/v1/deposits?wait=10000', {
      token: teller,
      body: { transferId: 'dup-1', accountId: 'dup-a', amount: '5', currency: 'EUR' },
    });
    const conflict = await call(url, 'POST', '/v1/deposits?wait=10000', {
      token: teller,
      body: { transferId: 'dup-1', accountId: 'dup-a', amount: '6.00', currency: 'EUR' },
    });

    expect(again.status).toBe(200);
    expect(again.body).toEqual(first);
    expect(conflict.status).toBe(409);
    expect(conflict.body).toMatchObject({
      code: 'idempotency_conflict',
      type: 'https://bankstream.dev/problems/idempotency_conflict',
    });
    await expectBalance('dup-a', '5.00');
  });

  it('should answer 202 with a Location when no wait is asked, and the outcome at that Location later', async () => {
    await openAccount('async-a', 'alice');
    const accepted = await call(url, 'POST', '/v1/deposits', {
      token: teller,
      body: { transferId: 'async-1', accountId: 'async-a', amount: '7.00', currency: 'EUR' },
    });

    expect(accepted.status).toBe(202);
    expect(accepted.body).toMatchObject({
      transferId: 'async-1',
      status: 'pending',
      location: '/v1/transfers/async-1?account=async-a',
    });
    const found = await waitFor(
      'the transfer in the read model',
      async () => {
        const response = await call(url, 'GET', accepted.headers.get('location')!, { token: alice });
        return response.status === 200 ? response.body : undefined;
      },
      20_000,
      100,
    );
    expect(found).toMatchObject({
      transferId: 'async-1',
      type: 'deposit',
      status: 'completed',
      accountId: 'async-a',
      amount: '7.00',
    });
    expect((await call(url, 'GET', '/v1/transfers/async-1', { token: bob })).status).toBe(403);
    expect((await call(url, 'GET', '/v1/transfers/never-sent', { token: admin })).body).toMatchObject({
      status: 404,
      code: 'transfer_not_found',
    });
  });

  it('should page the history newest first with a cursor when there are more transfers than the limit', async () => {
    await openAccount('hist-a', 'alice');
    for (let i = 1; i <= 5; i++) await deposit(`hist-${i}`, 'hist-a', `${i}.00`);
    await waitFor(
      '5 sunk transfers',
      async () => {
        const response = await call(url, 'GET', '/v1/accounts/hist-a/transfers?limit=100', { token: alice });
        return (response.body as { items: unknown[] }).items.length === 5 || undefined;
      },
      20_000,
      100,
    );

    const seen: string[] = [];
    let next: string | null = '/v1/accounts/hist-a/transfers?limit=2';
    while (next) {
      const page = await call(url, 'GET', next, { token: alice });
      const body = page.body as { items: Array<{ transferId: string }>; next: string | null };
      seen.push(...body.items.map((item) => item.transferId));
      next = body.next;
    }
    expect(seen).toEqual(['hist-5', 'hist-4', 'hist-3', 'hist-2', 'hist-1']);
    expect((await call(url, 'GET', '/v1/accounts/hist-a/transfers?cursor=bogus', { token: alice })).body).toMatchObject(
      { status: 400, code: 'invalid_parameter' },
    );
  });

  it('should answer 400 problem+json, never 503, when a cursor is crafted or the path encoding is malformed', async () => {
    const crafted = (at: string, id: string) => Buffer.from(JSON.stringify([at, id]), 'utf8').toString('base64url');
    for (const cursor of [
      crafted('2026-01-01T00:00:00.000000Z', 't-\u0000'),
      crafted('2026-02-30T00:00:00.000000Z', 't-1'),
      crafted('0000-01-01T00:00:00.000000Z', 't-1'),
    ]) {
      const response = await call(url, 'GET', `/v1/accounts/hist-a/transfers?cursor=${cursor}`, { token: alice });
      expect(response.body, cursor).toMatchObject({ status: 400, code: 'invalid_parameter' });
    }
    for (const path of [
      '/v1/accounts/%ZZ',
      '/v1/accounts/%ED%A0%80',
      '/v1/transfers/t-%',
      '/v1/accounts/%FF/transfers',
    ]) {
      const response = await call(url, 'GET', path, { token: admin });
      expect(response.status, path).toBe(400);
      expect(response.body, path).toMatchObject({ code: 'invalid_parameter' });
    }
  });

  it('should close an account only when its balance is zero, and read it as closed with 0.00', async () => {
    await openAccount('close-a', 'bob');
    await deposit('close-dep', 'close-a', '1.00');
    const refused = await call(url, 'POST', '/v1/accounts/close-a/close?wait=10000', { token: teller });
    const withdrawn = await call(url, 'POST', '/v1/withdrawals?wait=10000', {
      token: teller,
      body: { transferId: 'close-w', accountId: 'close-a', amount: '1.00', currency: 'EUR' },
    });
    const closed = await call(url, 'POST', '/v1/accounts/close-a/close?wait=10000', { token: teller });

    expect(refused.body).toMatchObject({
      status: 409,
      code: 'account_command_rejected',
      rejection: 'balance_not_zero',
    });
    expect(withdrawn.body).toMatchObject({ status: 'completed' });
    expect(closed.body).toMatchObject({ accountId: 'close-a', status: 'closed' });
    const read = await waitFor(
      'close-a read as closed',
      async () => {
        const response = await call(url, 'GET', '/v1/accounts/close-a', { token: bob });
        return (response.body as { status?: string }).status === 'closed' ? response.body : undefined;
      },
      5000,
      20,
    );
    expect(read).toMatchObject({ status: 'closed', balance: '0.00' });
    expect(
      (await call(url, 'POST', '/v1/accounts?wait=10000', { token: teller, body: eur('close-a', 'bob') })).body,
    ).toMatchObject({ status: 409, code: 'account_exists' });
  });
});

describe('validation', () => {
  it('should answer problem+json with the right status when inputs are invalid', async () => {
    const post = (route: string, options: Parameters<typeof call>[3]) =>
      call(url, 'POST', route, { token: admin, ...options });
    const cases: Array<[Promise<{ status: number; body: unknown }>, number, string]> = [
      [
        post('/v1/deposits', { raw: '{"transferId":', headers: { 'Content-Type': 'application/json' } }),
        400,
        'malformed_json',
      ],
      [post('/v1/deposits?wait=999999', { body: {} }), 400, 'invalid_parameter'],
      [call(url, 'GET', '/v1/accounts/no-such-account', { token: admin }), 404, 'account_not_found'],
      [call(url, 'GET', '/v1/accounts/no-such-account?allowStale=yes', { token: admin }), 400, 'invalid_parameter'],
      [call(url, 'GET', '/v1/nothing-here', { token: admin }), 404, 'not_found'],
      [call(url, 'DELETE', '/v1/deposits', { token: admin }), 405, 'method_not_allowed'],
      [post('/v1/deposits', { raw: JSON.stringify({ pad: 'x'.repeat(20_000) }) }), 413, 'payload_too_large'],
      [
        post('/v1/deposits', { raw: 'transferId=x', headers: { 'Content-Type': 'text/plain' } }),
        415,
        'unsupported_media_type',
      ],
      [
        post('/v1/deposits', { body: { transferId: 't', accountId: 'a', amount: 12.5, currency: 'EUR' } }),
        422,
        'validation_failed',
      ],
      [
        post('/v1/transfers', { body: { from: 'a', to: 'b', amount: '1.00', currency: 'EUR' } }),
        422,
        'validation_failed',
      ],
      [
        post('/v1/transfers', {
          headers: { 'Idempotency-Key': 'k1' },
          body: { transferId: 'k2', from: 'a', to: 'b', amount: '1.00', currency: 'EUR' },
        }),
        422,
        'validation_failed',
      ],
      [post('/v1/accounts', { body: { ownerId: 'x', currency: 'EUR', colour: 'blue' } }), 422, 'validation_failed'],
    ];
    for (const [pending, status, code] of cases) {
      const response = await pending;
      expect(response.body, code).toMatchObject({ status, code, type: `https://bankstream.dev/problems/${code}` });
    }
  });

  it('should never answer 500 when bodies and parameters are random', async () => {
    const routes = [
      '/v1/accounts',
      '/v1/transfers',
      '/v1/deposits',
      '/v1/withdrawals',
      '/v1/auth/token',
      '/v1/holds',
      '/v1/holds/h-fuzz/post',
      '/v1/holds/h-fuzz/void',
    ];
    const bodies = fc.sample(
      fc.oneof(
        fc.jsonValue(),
        fc.dictionary(
          fc.constantFrom(
            'transferId',
            'accountId',
            'from',
            'to',
            'amount',
            'currency',
            'ownerId',
            'username',
            'password',
            'timeoutMs',
            'expiresAt',
            'reference',
          ),
          fc.jsonValue(),
        ),
      ),
      { numRuns: 40, seed: 42 },
    );
    const ids = fc.sample(fc.string({ maxLength: 300 }), { numRuns: 20, seed: 7 });
    for (const route of routes) {
      for (const body of bodies) {
        const response = await call(url, 'POST', route, { token: admin, raw: JSON.stringify(body) ?? 'null' });
        expect(response.status, `${route} ${JSON.stringify(body)}`).toBeLessThan(500);
      }
    }
    for (const id of ids) {
      for (const template of [
        '/v1/accounts/%',
        '/v1/accounts/%/transfers?limit=%',
        '/v1/transfers/%',
        '/v1/holds/%?account=%',
      ]) {
        const response = await call(url, 'GET', template.replaceAll('%', encodeURIComponent(id)), { token: admin });
        expect(response.status, `${template} ${JSON.stringify(id)}`).toBeLessThan(500);
      }
    }
  });
});

describeHolds(() => ({ url, teller, alice, bob, admin, openAccount, deposit }));

describe('events, metrics and health', () => {
  it('should deliver an outcome of the account over Server-Sent Events when a deposit completes', async () => {
    await openAccount('sse-a', 'alice');
    // The 201 comes once the opening is visible; the stores, which the owner check reads, right after it.
    await waitFor(
      'sse-a readable',
      async () => (await call(url, 'GET', '/v1/accounts/sse-a', { token: alice })).status === 200,
      5000,
      20,
    );
    const controller = new AbortController();
    const response = await fetch(`${url}/v1/accounts/sse-a/events`, {
      headers: { Authorization: `Bearer ${alice}` },
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reader = response.body!.getReader();
    let text = '';
    const first = await reader.read();
    text += new TextDecoder().decode(first.value);
    await call(url, 'POST', '/v1/deposits', {
      token: teller,
      body: { transferId: 'sse-dep', accountId: 'sse-a', amount: '2.00', currency: 'EUR' },
    });
    const deadline = Date.now() + 15_000;
    while (!text.includes('event: transaction_completed') && Date.now() < deadline) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += new TextDecoder().decode(chunk.value);
    }
    controller.abort();
    const data = /event: transaction_completed\ndata: (.*)\n/.exec(text)?.[1];
    expect(JSON.parse(data!)).toMatchObject({ transferId: 'sse-dep', accountId: 'sse-a', amount: '2.00' });
  });

  it('should end an event stream with a token_expired event when the token that opened it expires', async () => {
    await openAccount('sse-exp', 'alice');
    const expiresAt = Math.floor(Date.now() / 1000) + 3;
    const shortLived = await new SignJWT({ role: 'customer' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setIssuer('bankstream')
      .setAudience('bankstream-api')
      .setExpirationTime(expiresAt)
      .sign(new TextEncoder().encode(DEV_SECRET));
    const response = await fetch(`${url}/v1/accounts/sse-exp/events`, {
      headers: { Authorization: `Bearer ${shortLived}` },
      signal: AbortSignal.timeout(30_000),
    });
    expect(response.status).toBe(200);
    // The server ends the stream by itself: reading to the end terminates.
    const text = await response.text();
    expect(text).toMatch(/event: token_expired\ndata: \{"detail":"[^"]*expired/);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt * 1000 - 1000);
  });

  it('should expose Prometheus metrics that move when transfers flow, and health, readiness and OpenAPI', async () => {
    const count = (text: string) =>
      Number(/^bankstream_outcomes_total\{result="completed",code="completed"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
    const admin = await adminToken(DEV_SECRET);
    const before = await call(url, 'GET', '/metrics', { token: admin });
    await openAccount('metrics-a', 'alice');
    await deposit('metrics-1', 'metrics-a', '1.00');
    const after = await call(url, 'GET', '/metrics', { token: admin });

    expect(before.headers.get('content-type')).toContain('text/plain');
    for (const line of after.text.split('\n').filter((l) => l && !l.startsWith('#')))
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? -?[0-9.e+-]+|NaN|[+-]Inf$/);
    expect(count(after.text)).toBeGreaterThan(count(before.text));
    expect(after.text).toMatch(
      /bankstream_http_request_duration_seconds_count\{[^}]*method="POST",route="\/v1\/deposits",status="200"/,
    );
    expect(after.text).toMatch(/bankstream_streams_tasks_running\{[^}]*\} 4/);
    // Lag per partition, once fetched: the processor's input and credits, the sink's outcome and audit topics.
    const lagSeries = (name: string) => [
      ...after.text.matchAll(new RegExp(`^${name}\\{[^}]*partition="(\\d+)"[^}]*\\} (\\d+)$`, 'gm')),
    ];
    expect(lagSeries('bankstream_streams_lag_records').length).toBeGreaterThanOrEqual(4);
    expect(lagSeries('bankstream_sink_lag_records').length).toBeGreaterThanOrEqual(4);
    expect((await call(url, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await call(url, 'GET', '/readyz')).body).toEqual({ ready: true });
    expect((await call(url, 'GET', '/readyz', { token: admin })).body).toMatchObject({
      ready: true,
      instanceId: 'api-0',
      streams: { state: 'RUNNING' },
      sink: { state: 'running' },
    });
    expect((await call(url, 'GET', '/openapi.json')).body).toMatchObject({ openapi: '3.1.0' });
  });
});
