// Which URLs the instance directory may name (INSTANCE_URL_ALLOW): a directory record pointing anywhere
// else is ignored, so a forged or stale record cannot send instance-to-instance calls to another host.
import { ConfigError, type Env } from './settings.ts';

/**
 * One allowed shape of instance URLs: scheme, host (exact, `*` = any single DNS label, `*.<domain>` = one
 * label under the domain), port (`undefined` = any) and path prefix.
 */
export interface UrlPattern {
  protocol: 'http:' | 'https:';
  host: string;
  port: string | undefined;
  path: string;
}

const HOST_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * INSTANCE_URL_ALLOW: comma-separated `scheme://host[:port][/path]` patterns, host `*` (one DNS label, e.g.
 * compose service names) or `*.<domain>` (one label under a domain, e.g. the pods of a headless Service),
 * port `*` = any. Default: ADVERTISED_URL's scheme and path, and its siblings: for a DNS name with a dot
 * `*.<parent domain>` on the same port (pods of a headless Service), for a single label `*` on the same port
 * (compose services), for an IP address or localhost that host on any port (instances of one machine, which
 * differ by port; instances on other addresses need INSTANCE_URL_ALLOW).
 */
export function instanceUrlAllow(env: Env, advertisedUrl: string): UrlPattern[] {
  const raw = env['INSTANCE_URL_ALLOW']?.trim();
  if (!raw) return [derivedPattern(advertisedUrl)];
  const patterns = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (patterns.length === 0)
    throw new ConfigError('INSTANCE_URL_ALLOW', 'expected at least one scheme://host[:port] pattern');
  const own = new URL(advertisedUrl);
  const parsed = patterns.map((pattern) => parseUrlPattern(pattern));
  if (own.port !== '0' && !parsed.some((p) => urlMatchesPattern(own, p))) {
    throw new ConfigError(
      'INSTANCE_URL_ALLOW',
      `does not allow this instance's own ADVERTISED_URL ${advertisedUrl}: other instances would ignore its directory record`,
    );
  }
  return parsed;
}

function parseUrlPattern(pattern: string): UrlPattern {
  const match =
    /^(https?):\/\/(\*|\*\.[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\*|\d{1,5}))?(\/[A-Za-z0-9._~/-]*)?$/.exec(
      pattern,
    );
  if (!match)
    throw new ConfigError(
      'INSTANCE_URL_ALLOW',
      `expected scheme://host[:port][/path] with host "*", "*.domain" or a name, got ${JSON.stringify(pattern)}`,
    );
  const [, scheme, host, port, urlPath] = match;
  if (port !== undefined && port !== '*' && (Number(port) < 1 || Number(port) > 65535))
    throw new ConfigError('INSTANCE_URL_ALLOW', `port ${port} is out of range in ${JSON.stringify(pattern)}`);
  const domain = host!.startsWith('*.') ? host!.slice(2) : undefined;
  if (domain !== undefined && !domain.split('.').every((label) => HOST_LABEL.test(label.toLowerCase()))) {
    throw new ConfigError('INSTANCE_URL_ALLOW', `"${domain}" is not a DNS domain in ${JSON.stringify(pattern)}`);
  }
  const protocol = `${scheme}:` as UrlPattern['protocol'];
  const defaultPort = protocol === 'https:' ? '443' : '80';
  return {
    protocol,
    host: host!.toLowerCase(),
    port: port === '*' ? undefined : (port ?? defaultPort),
    path: normalizePath(urlPath ?? '/'),
  };
}

function derivedPattern(advertisedUrl: string): UrlPattern {
  const own = new URL(advertisedUrl);
  const parts = instanceUrlParts(own);
  const host = parts.host;
  const oneMachine = host.startsWith('[') || /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host === 'localhost';
  if (oneMachine) return { protocol: parts.protocol, host, port: undefined, path: parts.path };
  const derivedHost = host.includes('.') ? `*.${host.slice(host.indexOf('.') + 1)}` : '*';
  return {
    protocol: parts.protocol,
    host: derivedHost,
    port: own.port === '0' ? undefined : parts.port,
    path: parts.path,
  };
}

function instanceUrlParts(url: URL): {
  protocol: UrlPattern['protocol'];
  host: string;
  port: string;
  path: string;
} {
  const protocol = url.protocol as UrlPattern['protocol'];
  return {
    protocol,
    host: url.hostname.toLowerCase(),
    port: url.port || (protocol === 'https:' ? '443' : '80'),
    path: normalizePath(url.pathname),
  };
}

function normalizePath(p: string): string {
  return p.endsWith('/') ? p : `${p}/`;
}

/** Whether an instance URL fits a pattern: no credentials, query or fragment; scheme, host, port and path as allowed. */
export function urlMatchesPattern(url: URL, pattern: UrlPattern): boolean {
  if (url.username || url.password || url.search || url.hash) return false;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  const parts = instanceUrlParts(url);
  if (parts.protocol !== pattern.protocol) return false;
  if (pattern.port !== undefined && parts.port !== pattern.port) return false;
  if (parts.path !== pattern.path) return false;
  if (pattern.host === '*') return HOST_LABEL.test(parts.host);
  if (pattern.host.startsWith('*.')) {
    const suffix = pattern.host.slice(1);
    return parts.host.endsWith(suffix) && HOST_LABEL.test(parts.host.slice(0, -suffix.length));
  }
  return parts.host === pattern.host;
}

/** Whether an instance URL (a string from a directory record) is one of the allowed ones. */
export function instanceUrlAllowed(value: string, patterns: readonly UrlPattern[]): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return patterns.some((pattern) => urlMatchesPattern(url, pattern));
}
