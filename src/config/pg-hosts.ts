// libpq's multi-host connection strings, which node-postgres does not read:
//   postgres://user@host1:5432,host2:5433/db?target_session_attrs=read-write
// node-postgres (8.x, pg-connection-string 2.x) takes one host only and WHATWG URL refuses "h1:1,h2:2",
// so the host list is split here into one single-host URL per host, tried in order by connectPg
// (src/sinks/pg-connection.ts), the way libpq does. target_session_attrs is taken out of the URLs
// (node-postgres would send it to the server as a run-time parameter, which the server refuses).

/** libpq's target_session_attrs values that bankstream implements (libpq 14+ has the same names). */
export const TARGET_SESSION_ATTRS = ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'] as const;
export type TargetSessionAttrs = (typeof TARGET_SESSION_ATTRS)[number];

export interface PgHostUrl {
  /** host:port as written (port defaulted to 5432), for messages. */
  address: string;
  /** A single-host URL node-postgres reads, without target_session_attrs. */
  url: string;
}

export interface PgHosts {
  hosts: PgHostUrl[];
  /** From the URL's target_session_attrs; default 'any' (libpq's default). */
  targetSessionAttrs: TargetSessionAttrs;
}

/** Bound on the host list: a typo must not turn into thousands of connection attempts. */
export const PG_HOSTS_MAX = 16;

const URL_PARTS = /^(postgres(?:ql)?:\/\/)([^@/?#]*@)?([^/?#]*)(.*)$/s;

export class PgUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PgUrlError';
  }
}

/** Splits a (possibly multi-host) postgres URL; throws PgUrlError with a reason that never echoes a password. */
export function parsePgHosts(databaseUrl: string): PgHosts {
  const match = URL_PARTS.exec(databaseUrl);
  if (!match) {
    // Not a postgres URL with an authority: leave the verdict to URL (single host, or the caller's protocol check).
    return { hosts: [{ address: safeAddress(databaseUrl), url: databaseUrl }], targetSessionAttrs: 'any' };
  }
  const [, scheme = '', userinfo = '', hostList = '', rest = ''] = match;
  const parts = hostList.split(',');
  if (parts.length > PG_HOSTS_MAX) throw new PgUrlError(`expected at most ${PG_HOSTS_MAX} hosts, got ${parts.length}`);
  if (parts.some((part) => part.trim() === '') && parts.length > 1)
    throw new PgUrlError('an empty host in the host list');
  let targetSessionAttrs: TargetSessionAttrs = 'any';
  const hosts = parts.map((part) => {
    let url: URL;
    try {
      url = new URL(`${scheme}${userinfo}${part.trim()}${rest}`);
    } catch {
      throw new PgUrlError(`host ${JSON.stringify(part)} does not make a valid URL`);
    }
    const attrs = url.searchParams.get('target_session_attrs');
    if (attrs !== null) {
      if (!(TARGET_SESSION_ATTRS as readonly string[]).includes(attrs)) {
        throw new PgUrlError(
          `target_session_attrs: expected ${TARGET_SESSION_ATTRS.join(', ')}, got ${JSON.stringify(attrs)}`,
        );
      }
      targetSessionAttrs = attrs as TargetSessionAttrs;
      url.searchParams.delete('target_session_attrs');
    }
    // One host and nothing taken out: the URL exactly as given (no re-encoding).
    const single = parts.length === 1 && attrs === null;
    return { address: `${url.hostname}:${url.port || '5432'}`, url: single ? databaseUrl : url.toString() };
  });
  return { hosts, targetSessionAttrs };
}

/** The first host's URL: for settings read off the URL (TLS parameters, database name), the same for every host. */
export function firstHostUrl(databaseUrl: string): string {
  return parsePgHosts(databaseUrl).hosts[0]?.url ?? databaseUrl;
}

/** The same URL (every host, every parameter) naming another database. */
export function withDatabase(databaseUrl: string, database: string): string {
  const match = URL_PARTS.exec(databaseUrl);
  if (!match) {
    const url = new URL(databaseUrl);
    url.pathname = `/${encodeURIComponent(database)}`;
    return url.toString();
  }
  const [, scheme = '', userinfo = '', hostList = '', rest = ''] = match;
  const tail = rest.replace(/^\/[^?#]*/, '');
  return `${scheme}${userinfo}${hostList}/${encodeURIComponent(database)}${tail}`;
}

function safeAddress(value: string): string {
  try {
    const url = new URL(value);
    return `${url.hostname}:${url.port || '5432'}`;
  } catch {
    return 'an unparseable URL';
  }
}
