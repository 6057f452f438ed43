// The rooms of src/ and what each may import (docs/architecture.md draws the same table). A new arrow
// between rooms is a design decision: add it to the table here and to the document, or move the code.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../../src');

/** Room → the rooms it may import from, lowest first (a room may always import itself). */
const MAY_IMPORT: Record<string, readonly string[]> = {
  config: [],
  stores: [],
  problems: [],
  kafka: ['config'],
  topology: ['kafka', 'stores'],
  streams: ['kafka', 'stores'],
  bank: ['stores', 'topology'],
  runtime: ['config', 'kafka', 'stores', 'streams', 'topology'],
  sinks: ['config', 'kafka'],
  metrics: ['sinks', 'stores', 'streams'],
  commands: ['config', 'kafka', 'problems'],
  tails: ['commands', 'config', 'kafka', 'metrics', 'problems', 'stores'],
  cluster: ['config', 'kafka', 'metrics', 'streams', 'tails'],
  http: [
    'bank',
    'cluster',
    'commands',
    'config',
    'kafka',
    'metrics',
    'problems',
    'sinks',
    'stores',
    'streams',
    'tails',
    'topology',
  ],
  load: ['config', 'kafka'],
  ops: ['bank', 'config', 'kafka', 'sinks', 'stores', 'topology'],
  app: ['bank', 'config', 'http', 'kafka', 'metrics', 'runtime', 'sinks'],
  dev: ['app', 'config', 'http', 'kafka', 'load', 'ops', 'sinks', 'streams'],
  cli: ['app', 'config', 'dev', 'http', 'kafka', 'load', 'ops', 'sinks'],
};

const FILE_LINES_MAX = 400;
const FACADE_LINES_MAX = 250;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return name.endsWith('.ts') ? [full] : [];
  });
}

const roomOf = (file: string) => path.relative(SRC, file).split(path.sep)[0]!;
const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'";]*?\bfrom\s+['"](\.{1,2}\/[^'"]+)['"]/g;

describe('the rooms of src/', () => {
  const files = sourceFiles(SRC);

  it('should have a rule for every room', () => {
    const rooms = new Set(files.map(roomOf));
    expect([...rooms].filter((room) => !(room in MAY_IMPORT))).toEqual([]);
  });

  it('should import only from the rooms each room may import from', () => {
    const wrong: string[] = [];
    let crossing = 0;
    for (const file of files) {
      const room = roomOf(file);
      for (const match of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        const target = path.resolve(path.dirname(file), match[1]!);
        if (!target.startsWith(SRC + path.sep)) continue;
        const to = roomOf(target);
        if (to !== room) crossing++;
        if (to !== room && !MAY_IMPORT[room]?.includes(to))
          wrong.push(`${path.relative(SRC, file)} imports ${match[1]} (${room} → ${to})`);
      }
    }
    expect(wrong).toEqual([]);
    // The pattern still reads this codebase's imports (hundreds cross a room's wall).
    expect(crossing).toBeGreaterThan(300);
  });

  it('should keep every source file under the line limit, and the engine facade small', () => {
    const long = files
      .map((file) => ({ file: path.relative(SRC, file), lines: readFileSync(file, 'utf8').split('\n').length }))
      .filter(({ lines }) => lines > FILE_LINES_MAX);
    expect(long).toEqual([]);
    const facade = readFileSync(path.join(SRC, 'runtime/kafka-streams.ts'), 'utf8').split('\n').length;
    expect(facade).toBeLessThan(FACADE_LINES_MAX);
  });

  it('should not import upwards: the table itself has no loop', () => {
    const visiting = new Set<string>();
    const done = new Set<string>();
    const loops: string[] = [];
    const visit = (room: string, trail: string[]) => {
      if (done.has(room)) return;
      if (visiting.has(room)) {
        loops.push([...trail, room].join(' → '));
        return;
      }
      visiting.add(room);
      for (const next of MAY_IMPORT[room] ?? []) visit(next, [...trail, room]);
      visiting.delete(room);
      done.add(room);
    };
    for (const room of Object.keys(MAY_IMPORT)) visit(room, []);
    expect(loops).toEqual([]);
  });
});
