// COPY ... FROM STDIN in PostgreSQL's text format, through pg-copy-streams.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

export type CopyValue = string | number | bigint | null;

/** Streams rows into `table (columns)` in one COPY; rows are arrays in column order. */
export async function copyRows(
  client: pg.ClientBase,
  table: string,
  columns: readonly string[],
  rows: readonly CopyValue[][],
): Promise<void> {
  if (rows.length === 0) return;
  const sink = client.query(copyFrom(`COPY ${table} (${columns.join(', ')}) FROM STDIN (FORMAT text)`));
  await pipeline(Readable.from(encodeLines(rows)), sink);
}

function* encodeLines(rows: readonly CopyValue[][]): Generator<string> {
  // Chunks of lines rather than one line per write: fewer, larger CopyData messages.
  const chunkRows = 500;
  for (let start = 0; start < rows.length; start += chunkRows) {
    let chunk = '';
    for (const row of rows.slice(start, start + chunkRows)) chunk += `${row.map(encodeField).join('\t')}\n`;
    yield chunk;
  }
}

/** One field of the text format: \N for NULL; backslash, tab, newline and carriage return escaped. */
export function encodeField(value: CopyValue): string {
  if (value === null) return '\\N';
  if (typeof value !== 'string') return String(value);
  return value.replace(/[\\\t\n\r]/g, (char) =>
    char === '\\' ? '\\\\' : char === '\t' ? '\\t' : char === '\n' ? '\\n' : '\\r',
  );
}
