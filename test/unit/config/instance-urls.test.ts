import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, instanceUrlAllowed, loadConfig } from '../../../src/config/config.ts';

const allow = (env: Record<string, string>) => loadConfig(env).instanceUrlAllow;

describe('INSTANCE_URL_ALLOW', () => {
  it('should allow the pods of the same headless Service when derived from a StatefulSet ADVERTISED_URL', () => {
    const patterns = allow({ ADVERTISED_URL: 'http://bankstream-0.bankstream-headless.ns.svc.cluster.local:8080' });

    expect(instanceUrlAllowed('http://bankstream-2.bankstream-headless.ns.svc.cluster.local:8080', patterns)).toBe(
      true,
    );
    expect(instanceUrlAllowed('http://bankstream-2.bankstream-headless.ns.svc.cluster.local:9999', patterns)).toBe(
      false,
    );
    expect(instanceUrlAllowed('https://bankstream-2.bankstream-headless.ns.svc.cluster.local:8080', patterns)).toBe(
      false,
    );
    expect(instanceUrlAllowed('http://evil.example:8080', patterns)).toBe(false);
    expect(instanceUrlAllowed('http://a.b.bankstream-headless.ns.svc.cluster.local:8080', patterns)).toBe(false);
    expect(instanceUrlAllowed('http://169.254.169.254:8080', patterns)).toBe(false);
  });

  it('should allow single-label hosts when derived from a compose ADVERTISED_URL, and that address on any port when it is an IP', () => {
    const compose = allow({ ADVERTISED_URL: 'http://bankstream-1:8080' });
    expect(instanceUrlAllowed('http://bankstream-3:8080', compose)).toBe(true);
    expect(instanceUrlAllowed('http://bankstream-3:9999', compose)).toBe(false);
    expect(instanceUrlAllowed('http://evil.example:8080', compose)).toBe(false);
    // Several instances of one machine differ by port (tests, a laptop, the bench).
    for (const advertised of ['http://127.0.0.1:0', 'http://127.0.0.1:18080', 'http://localhost:18080']) {
      const host = new URL(advertised).hostname;
      const patterns = allow({ ADVERTISED_URL: advertised });
      expect(instanceUrlAllowed(`http://${host}:41234`, patterns)).toBe(true);
      expect(instanceUrlAllowed('http://127.0.0.2:41234', patterns)).toBe(false);
      expect(instanceUrlAllowed(`https://${host}:41234`, patterns)).toBe(false);
    }
  });

  it('should refuse URLs with credentials, a query, a fragment, another path or another scheme whatever the pattern', () => {
    const patterns = allow({
      ADVERTISED_URL: 'http://10.0.0.1:8080',
      INSTANCE_URL_ALLOW: 'http://*.internal:*,http://10.0.0.1:8080',
    });

    expect(instanceUrlAllowed('http://a.internal:1234', patterns)).toBe(true);
    for (const url of [
      'http://u:p@a.internal:1234',
      'http://a.internal:1234/?x',
      'http://a.internal:1234/#f',
      'http://a.internal:1234/other',
      'file:///etc/passwd',
      'gopher://a.internal:1',
      'not a url',
    ]) {
      expect(instanceUrlAllowed(url, patterns)).toBe(false);
    }
  });

  it('should stop start-up naming the variable when a pattern is malformed or excludes this instance', () => {
    expect(() => allow({ INSTANCE_URL_ALLOW: 'ftp://x' })).toThrow(ConfigError);
    expect(() => allow({ INSTANCE_URL_ALLOW: 'http://*.-bad-:80' })).toThrow(/INSTANCE_URL_ALLOW/);
    expect(() => allow({ ADVERTISED_URL: 'http://a.svc:8080', INSTANCE_URL_ALLOW: 'http://*.other:8080' })).toThrow(
      /own ADVERTISED_URL/,
    );
    expect(() => loadConfig({ MANAGEMENT_PORT: '8080' })).toThrow(/MANAGEMENT_PORT/);
    expect(() => loadConfig({ MANAGEMENT_HOST: '0.0.0.0' })).toThrow(/MANAGEMENT_HOST/);
    expect(loadConfig({ MANAGEMENT_PORT: '9464' }).management).toEqual({ host: '127.0.0.1', port: 9464 });
  });

  it('should allow no URL outside the pattern when URLs are random (property)', () => {
    const patterns = allow({ ADVERTISED_URL: 'https://api-0.cluster.example:8443' });
    fc.assert(
      fc.property(fc.webUrl({ withQueryParameters: true, withFragments: true }), (url) => {
        const parsed = new URL(url);
        const inside =
          parsed.protocol === 'https:' &&
          parsed.port === '8443' &&
          /^[a-z0-9-]+\.cluster\.example$/.test(parsed.hostname) &&
          !parsed.search &&
          !parsed.hash &&
          parsed.pathname === '/' &&
          !parsed.username;
        expect(instanceUrlAllowed(url, patterns)).toBe(inside);
      }),
      { numRuns: 300 },
    );
  });
});
