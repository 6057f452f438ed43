// Login throttling and user enumeration (issue 15), against a real instance and the users table.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decoyReady } from '../../../src/http/passwords.ts';
import { adminToken } from '../support/tokens.ts';
import { DEV_SECRET, PASSWORD, type Stack, call, createStack, login } from './stack.ts';

let stack: Stack;
let url: string;
const TIMING_PAIRS = 8;

/** POST /v1/auth/token from a chosen local address (the loopback has all of 127.0.0.0/8), so as another client. */
function loginFrom(
  localAddress: string,
  username: string,
  password: string,
): Promise<{ status: number; retryAfter: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL('/v1/auth/token', url);
    const request = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        localAddress,
        headers: { 'content-type': 'application/json' },
      },
      (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
        response.on('end', () =>
          resolve({ status: response.statusCode!, retryAfter: response.headers['retry-after'], body }),
        );
      },
    );
    request.on('error', reject);
    request.end(JSON.stringify({ username, password }));
  });
}

async function timedLogin(username: string, password: string): Promise<{ ms: number; status: number }> {
  const started = performance.now();
  const response = await call(url, 'POST', '/v1/auth/token', { body: { username, password } });
  return { ms: performance.now() - started, status: response.status };
}

const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;

beforeAll(async () => {
  stack = await createStack('httplogin');
  url = (await stack.start({ INSTANCE_ID: 'login-0' }, { sink: false })).http!.url;
  const users = ['alice', 'bob', 'warm', ...Array.from({ length: TIMING_PAIRS }, (_, i) => `known-${i}`)];
  for (const id of users) await stack.addUser(id, 'customer');
});

afterAll(async () => {
  await stack?.cleanup();
});

describe('logins', () => {
  // First in the file: "from the first attempt" means no unknown-user login has been made before on this instance.
  it('should take as long for an unknown user as for a known one with a wrong password, from the first attempt', async () => {
    // The API built the decoy hash at start, before any login (the deterministic half of this property).
    expect(decoyReady()).toBe(true);
    // Warms the connection pool and the code path with a successful login of an unrelated user.
    await login(url, 'warm');
    const unknown: number[] = [];
    const known: number[] = [];
    for (let i = 0; i < TIMING_PAIRS; i++) {
      // Alternating the order spreads the machine's noise over both sides.
      const pair =
        i % 2 === 0
          ? [await timedLogin(`nobody-${i}`, 'wrong-password'), await timedLogin(`known-${i}`, 'wrong-password')]
          : [
              await timedLogin(`known-${i}`, 'wrong-password'),
              await timedLogin(`nobody-${i}`, 'wrong-password'),
            ].reverse();
      expect(pair.map((p) => p.status)).toEqual([401, 401]);
      unknown.push(pair[0]!.ms);
      known.push(pair[1]!.ms);
    }
    const ratio = median(unknown) / median(known);
    // A correctness property with a generous bound: a lazily built decoy made the first unknown login cost two
    // scrypt runs (ratio about 2 on its own), and a missing decoy check costs none (ratio far below 0.5).
    expect(ratio, `unknown ${unknown.map(Math.round)} ms, known ${known.map(Math.round)} ms`).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
    expect(unknown[0]! / median(known), `first unknown login ${Math.round(unknown[0]!)} ms`).toBeLessThan(1.9);
  });

  it('should throttle 50 wrong passwords of one user from one client with Retry-After while another user logs in meanwhile', async () => {
    const statuses: number[] = [];
    const retryAfters: number[] = [];
    let bob: { status: number } | undefined;
    for (let i = 0; i < 50; i++) {
      const response = await call(url, 'POST', '/v1/auth/token', {
        body: { username: 'alice', password: `guess-${i}-wrong` },
      });
      statuses.push(response.status);
      if (response.status === 429) {
        expect(response.body).toMatchObject({ code: 'login_throttled', status: 429 });
        retryAfters.push(Number(response.headers.get('retry-after')));
      }
      // Meanwhile, another user of the same client address logs in on the first try.
      if (i === 25) bob = await call(url, 'POST', '/v1/auth/token', { body: { username: 'bob', password: PASSWORD } });
    }

    expect(bob?.status).toBe(200);
    // The default: 5 free failures, then 1 s, 2 s, 4 s … of backoff: few password checks, most attempts refused.
    expect(statuses.filter((s) => s === 401).length).toBeGreaterThanOrEqual(5);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(12);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(38);
    expect(new Set(statuses)).toEqual(new Set([401, 429]));
    expect(retryAfters.every((s) => Number.isInteger(s) && s >= 1)).toBe(true);
    // Even the right password waits while the backoff holds: a guess that happens to be right learns nothing.
    expect(
      (await call(url, 'POST', '/v1/auth/token', { body: { username: 'alice', password: PASSWORD } })).status,
    ).toBe(429);
    // The same user from another client address is not locked out by the attacker.
    expect((await loginFrom('127.0.0.2', 'alice', PASSWORD)).status).toBe(200);
    const metrics = (await call(url, 'GET', '/metrics', { token: await adminToken(DEV_SECRET) })).text;
    expect(
      Number(/^bankstream_http_logins_throttled_total\{[^}]*reason="backoff"[^}]*\} (\d+)$/m.exec(metrics)?.[1]),
    ).toBeGreaterThanOrEqual(38);
  });
});
