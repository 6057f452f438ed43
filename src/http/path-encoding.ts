// Percent-encoding of the request path is checked once, before routing. @koa/router decodes path
// parameters with a "safe" decode that falls back to the raw text when decoding fails, so
// `/v1/accounts/%ZZ` would reach a route as the literal id "%ZZ", and `%ED%A0%80` (a UTF-8-encoded lone
// surrogate) as its raw bytes. A path whose encoding is malformed names nothing: it is a 400. The query
// string too: Node's querystring also keeps a malformed escape as literal text.
import type { Context, Next } from 'koa';
import { invalidParameter } from '../problems/errors.ts';

/** The path decoded, or undefined when its percent-encoding is malformed (a bare "%", bad hex, not UTF-8). */
export function decodePath(rawPath: string): string | undefined {
  try {
    return decodeURIComponent(rawPath);
  } catch {
    return undefined;
  }
}

const MALFORMED =
  'has malformed percent-encoding: every "%" must start a %XX escape of hex digits, and the escapes must spell UTF-8';

export function strictPathEncoding() {
  return async (ctx: Context, next: Next): Promise<void> => {
    if (decodePath(ctx.path) === undefined) {
      throw invalidParameter('path', MALFORMED);
    }
    if (ctx.querystring !== '' && decodePath(ctx.querystring) === undefined) throw invalidParameter('query', MALFORMED);
    await next();
  };
}
