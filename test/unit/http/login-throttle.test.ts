import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { ApiError } from '../../../src/problems/errors.ts';
import { LoginThrottle, backoffS, clientKey } from '../../../src/http/login-throttle.ts';

const http = (env: Record<string, string> = {}) => loadConfig({ LOGIN_FAILURES_FREE: '3', ...env }).http;
const wrong = async () => false;
const right = async () => true;

async function refusal(promise: Promise<unknown>): Promise<ApiError | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return error as ApiError;
  }
}

describe('LoginThrottle', () => {
  it('should refuse with login_throttled and a Retry-After when one username fails too often from one client', async () => {
    const throttle = new LoginThrottle(http());
    for (let i = 0; i < 4; i++) expect(await throttle.attempt('alice', '10.0.0.1', wrong)).toBe(false);
    let checked = false;
    const error = await refusal(throttle.attempt('alice', '10.0.0.1', async () => ((checked = true), true)));

    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: 'login_throttled', status: 429 });
    expect(error!.retryAfterS).toBeGreaterThanOrEqual(1);
    expect(checked).toBe(false);
  });

  it('should let another username and the same username from another client in when one pair is throttled', async () => {
    const throttle = new LoginThrottle(http());
    for (let i = 0; i < 4; i++) await throttle.attempt('alice', '10.0.0.1', wrong);

    expect(await throttle.attempt('bob', '10.0.0.1', right)).toBe(true);
    expect(await throttle.attempt('alice', '10.0.0.2', right)).toBe(true);
    expect(await refusal(throttle.attempt('ALICE', '10.0.0.1', right))).toMatchObject({ code: 'login_throttled' });
  });

  it('should forget the failures in a row when the login succeeds', async () => {
    const throttle = new LoginThrottle(http());
    for (let i = 0; i < 3; i++) await throttle.attempt('alice', '10.0.0.1', wrong);
    expect(await throttle.attempt('alice', '10.0.0.1', right)).toBe(true);
    for (let i = 0; i < 3; i++) expect(await throttle.attempt('alice', '10.0.0.1', wrong)).toBe(false);
  });

  it('should refuse a client address when it fails for many usernames, and a username when many addresses fail for it', async () => {
    const throttle = new LoginThrottle(
      http({ LOGIN_FAILURES_PER_CLIENT_PER_HOUR: '5', LOGIN_FAILURES_PER_USER_PER_HOUR: '4' }),
    );
    for (let i = 0; i < 5; i++) await throttle.attempt(`user-${i}`, '10.0.0.9', wrong);
    expect(await refusal(throttle.attempt('someone', '10.0.0.9', right))).toMatchObject({ code: 'login_throttled' });
    for (let i = 0; i < 4; i++) await throttle.attempt('carol', `10.1.0.${i}`, wrong);
    expect(await refusal(throttle.attempt('carol', '10.2.0.1', right))).toMatchObject({ code: 'login_throttled' });
    expect(await throttle.attempt('dave', '10.2.0.1', right)).toBe(true);
  });

  it('should refuse a third concurrent check from one client without delaying another client', async () => {
    const throttle = new LoginThrottle(http());
    let release!: () => void;
    const gate = new Promise<boolean>((resolve) => (release = () => resolve(false)));
    const held = [throttle.attempt('a', '10.0.0.1', () => gate), throttle.attempt('b', '10.0.0.1', () => gate)];

    expect(await refusal(throttle.attempt('c', '10.0.0.1', right))).toMatchObject({ code: 'login_throttled' });
    const other = throttle.attempt('d', '10.0.0.2', right);
    release();
    expect(await other).toBe(true);
    await Promise.all(held);
  });
});

describe('backoffS and clientKey', () => {
  it('should double the backoff per failure beyond the free ones up to the bound', () => {
    expect([1, 2, 3, 4, 10, 40].map((n) => backoffS(n, 900))).toEqual([1, 2, 4, 8, 512, 900]);
  });

  it('should key an IPv6 client by its /64 and an IPv4-mapped one as IPv4', () => {
    expect(clientKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(clientKey('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(clientKey('10.0.0.1')).toBe('10.0.0.1');
  });
});
