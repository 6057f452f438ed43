// The fast path of GET /v1/accounts/:id answers only a plain success and hands everything else to the Koa
// app (here a stand-in that answers 599 and counts what it got).
import type http from 'node:http';
import { SignJWT } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import type { AccountView } from '../../../src/http/account-view.ts';
import type { LocalRead } from '../../../src/http/accounts.ts';
import { Authenticator } from '../../../src/http/auth.ts';
import type { ApiDeps } from '../../../src/http/context.ts';
import { withAccountReadFastPath } from '../../../src/http/fast-read.ts';
import { Metrics } from '../../../src/metrics/metrics.ts';
import { type Served, serve } from './serve.ts';

const SECRET = 'unit-test-secret-with-more-than-32-characters';
const config = loadConfig({ AUTH_DEV_SECRET: SECRET, AUTH_CLOCK_TOLERANCE_S: '0' });
const authenticator = new Authenticator(config.auth, pino({ level: 'silent' }));
const metrics = new Metrics({ app: 'a', instance: 'i' }, { processMetrics: false });

function view(accountId: string, ownerId: string): AccountView {
  return {
    accountId,
    ownerId,
    currency: 'EUR',
    status: 'open',
    balance: '1.00',
    inFlight: '0.00',
    posted: '1.00',
    pendingDebits: '0.00',
    pendingCredits: '0.00',
    available: '1.00',
    overdraftLimit: '0.00',
    openedAt: '2026-12-02T00:00:00.000Z',
    position: { partition: 0, accounts: '1', balances: '2' },
    servedBy: { instanceId: 'i0', url: 'http://127.0.0.1:1' },
  };
}

// Accounts "acc-*" are local and owned by alice; "remote-*" are not here; "gone-*" fail to read;
// "throw-*" fail before the read begins.
const queries = {
  readHere(accountId: string): Promise<LocalRead> | undefined {
    if (accountId.startsWith('remote-')) return undefined;
    if (accountId.startsWith('throw-')) throw new Error('the topology has no accounts or balances store');
    if (accountId.startsWith('gone-')) return Promise.reject(new Error('not found'));
    const local = view(accountId, 'alice');
    return Promise.resolve({ view: local, body: JSON.stringify(local) });
  },
};

let fallbacks: string[] = [];
const koa: http.RequestListener = (req, res) => {
  fallbacks.push(req.url!);
  res.statusCode = 599;
  res.end();
};
let served: Served;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  const deps = { authenticator, queries, metrics, logger: pino({ level: 'silent' }) } as unknown as ApiDeps;
  served = await serve(withAccountReadFastPath(deps, koa));
  for (const [name, role] of [
    ['teller', 'teller'],
    ['alice', 'customer'],
    ['bob', 'customer'],
  ] as const) {
    tokens[name] = (await authenticator.issue(name, role)).token;
    await authenticator.verify(tokens[name]!);
  }
});
afterAll(() => served.close());
beforeEach(() => {
  fallbacks = [];
});

const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${served.url}${path}`, { headers: { authorization: `Bearer ${tokens['teller']}`, ...headers } });

describe('the fast path of GET /v1/accounts/:id', () => {
  it('should answer a local read with a remembered token as the Koa route does', async () => {
    const response = await get('/v1/accounts/acc-1', { 'X-Request-Id': 'req-1' });

    expect(response.status).toBe(200);
    expect(await response.json()).toEqual(view('acc-1', 'alice'));
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(response.headers.get('x-bankstream-instance')).toBe('i0');
    expect(response.headers.get('x-request-id')).toBe('req-1');
    expect(fallbacks).toEqual([]);
    const generated = (await get('/v1/accounts/acc-1', { 'X-Request-Id': 'bad id with spaces' })).headers;
    expect(generated.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('should hand every other request to the Koa app', async () => {
    const forged = `${tokens['teller']!.slice(0, -2)}${tokens['teller']!.at(-2) === 'A' ? 'B' : 'A'}${tokens['teller']!.at(-1)}`;
    const unseen = await new SignJWT({ role: 'teller' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('unseen')
      .setIssuer(config.auth.issuer)
      .setAudience(config.auth.audience)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(SECRET));
    const cases: Array<[string, Record<string, string>]> = [
      ['/v1/accounts/acc-1?allowStale=true', {}],
      ['/v1/accounts/acc-1/', {}],
      ['/v1/accounts/acc%2D1', {}],
      ['/v1/accounts/acc-1/transfers', {}],
      ['/v1/accounts/remote-1', {}],
      ['/v1/accounts/gone-1', {}],
      ['/v1/accounts/throw-1', {}],
      [`/v1/accounts/${'x'.repeat(257)}`, {}],
      ['/v1/accounts/acc-1', { authorization: `Bearer ${forged}` }],
      ['/v1/accounts/acc-1', { authorization: `Bearer ${unseen}` }],
      ['/v1/accounts/acc-1', { authorization: 'Basic dTpw' }],
      ['/v1/accounts/acc-1', { 'X-Bankstream-Instance-Call': 'x' }],
      ['/v1/accounts/acc-1', { authorization: `Bearer ${tokens['bob']}` }],
    ];
    for (const [path, headers] of cases) expect((await get(path, headers)).status, path).toBe(599);
    expect((await fetch(`${served.url}/v1/accounts/acc-1`)).status).toBe(599);
    expect((await fetch(`${served.url}/v1/accounts/acc-1`, { method: 'HEAD' })).status).toBe(599);
    expect(fallbacks).toHaveLength(cases.length + 2);
    // The owner itself is answered on the fast path.
    expect((await get('/v1/accounts/acc-1', { authorization: `Bearer ${tokens['alice']}` })).status).toBe(200);
  });

  it('should hand a remembered token to the Koa app once it has expired', async () => {
    const token = await new SignJWT({ role: 'teller' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('brief')
      .setIssuer(config.auth.issuer)
      .setAudience(config.auth.audience)
      .setExpirationTime(Math.floor(Date.now() / 1000) + 1)
      .sign(new TextEncoder().encode(SECRET));
    const principal = await authenticator.verify(token);
    expect((await get('/v1/accounts/acc-1', { authorization: `Bearer ${token}` })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, principal.expiresAtMs - Date.now()) + 20));

    expect((await get('/v1/accounts/acc-1', { authorization: `Bearer ${token}` })).status).toBe(599);
  });

  it('should count its answers in the request duration metric under the route template', async () => {
    await get('/v1/accounts/acc-metric');

    const text = await metrics.registry.metrics();
    expect(text).toMatch(
      /bankstream_http_request_duration_seconds_count\{[^}]*method="GET"[^}]*route="\/v1\/accounts\/:id"[^}]*status="200"[^}]*\} [1-9]/,
    );
  });
});
