// Reads a JSON request body with a hard size bound. No body-parser dependency: the rules are few and
// each maps to one problem code (415 wrong type, 413 too large, 400 not JSON, 422 not an object).
import type { Context } from 'koa';
import { ApiError, validationFailed } from '../problems/errors.ts';

export type JsonObject = Record<string, unknown>;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The body as a JSON object; throws ApiError for every way it can be unusable. */
export async function readJsonObject(ctx: Context, limitBytes: number): Promise<JsonObject> {
  if (!ctx.is('application/json')) {
    // Drain nothing: the connection is closed after an error response with an unread body.
    throw new ApiError('unsupported_media_type', 'the request body must be application/json');
  }
  const declared = ctx.request.length;
  if (declared !== undefined && declared > limitBytes) throw tooLarge(limitBytes);
  const text = await readBounded(ctx, limitBytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ApiError('malformed_json', `the request body is not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw validationFailed([{ field: '', message: 'the body must be a JSON object' }]);
  }
  return parsed as JsonObject;
}

async function readBounded(ctx: Context, limitBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    total += chunk.length;
    // A chunked body has no Content-Length: the bound is enforced while reading, not trusted up front.
    if (total > limitBytes) throw tooLarge(limitBytes);
    chunks.push(chunk);
  }
  try {
    return utf8.decode(Buffer.concat(chunks, total));
  } catch {
    throw new ApiError('malformed_json', 'the request body is not valid UTF-8');
  }
}

function tooLarge(limitBytes: number): ApiError {
  return new ApiError('payload_too_large', `the request body exceeds ${limitBytes} bytes`, {
    extensions: { limitBytes },
    headers: { Connection: 'close' },
  });
}
