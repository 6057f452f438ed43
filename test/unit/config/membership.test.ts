// Issue 20: the static membership settings, validated at start-up with an error naming the setting.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/config.ts';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('membership settings', () => {
  it('should default to static membership that keeps its partitions on stop, with a 10 s session timeout', () => {
    expect(loadConfig({}).membership).toEqual({
      staticMembership: true,
      leaveGroupOnClose: false,
      sessionTimeoutMs: 10_000,
    });
  });

  it('should take STATIC_MEMBERSHIP=false and LEAVE_GROUP_ON_CLOSE=true', () => {
    expect(loadConfig({ STATIC_MEMBERSHIP: 'false' }).membership.staticMembership).toBe(false);
    expect(loadConfig({ LEAVE_GROUP_ON_CLOSE: 'true' }).membership.leaveGroupOnClose).toBe(true);
    // A dynamic member leaves anyway: asking for it explicitly is consistent.
    expect(loadConfig({ STATIC_MEMBERSHIP: 'false', LEAVE_GROUP_ON_CLOSE: 'true' }).membership).toMatchObject({
      staticMembership: false,
      leaveGroupOnClose: true,
    });
  });

  it('should refuse LEAVE_GROUP_ON_CLOSE=false when STATIC_MEMBERSHIP=false, naming the setting', () => {
    const error = configError({ STATIC_MEMBERSHIP: 'false', LEAVE_GROUP_ON_CLOSE: 'false' });
    expect(error.variable).toBe('LEAVE_GROUP_ON_CLOSE');
    expect(error.message).toMatch(/STATIC_MEMBERSHIP=true/);
  });

  it('should refuse a value that is not a boolean, naming the setting', () => {
    for (const name of ['STATIC_MEMBERSHIP', 'LEAVE_GROUP_ON_CLOSE'])
      for (const bad of ['maybe', 'on', '2', 'truee']) {
        const error = configError({ [name]: bad });
        expect(error.variable).toBe(name);
        expect(error.message).toMatch(/true or false/);
      }
  });

  it('should take SESSION_TIMEOUT_MS within the broker defaults (6 s to 30 min) and refuse anything else', () => {
    expect(loadConfig({ SESSION_TIMEOUT_MS: '45000' }).membership.sessionTimeoutMs).toBe(45_000);
    for (const bad of ['5999', '1800001', '-1', '10s', '1e4']) {
      const error = configError({ SESSION_TIMEOUT_MS: bad });
      expect(error.variable).toBe('SESSION_TIMEOUT_MS');
      expect(error.message).toMatch(/between 6000 and 1800000/);
    }
  });
});
