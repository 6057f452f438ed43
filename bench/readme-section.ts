// The latest run's section of bench/README.md, between two markers, rewritten by each full run (so the
// README shows what the committed results JSON holds), then laid out by Biome as the repo's check wants.
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const SECTION_START = '<!-- bench:latest-run:start (written by `npm run bench`; edits here are overwritten) -->';
export const SECTION_END = '<!-- bench:latest-run:end -->';

/** `text` with the marked section replaced by `content`, or the section appended when there is none. */
export function spliceSection(text: string, content: string): string {
  const block = `${SECTION_START}\n\n${content.trim()}\n\n${SECTION_END}`;
  const start = text.indexOf(SECTION_START);
  const end = text.indexOf(SECTION_END);
  if (start >= 0 && end > start) return text.slice(0, start) + block + text.slice(end + SECTION_END.length);
  if (start >= 0 || end >= 0) throw new Error('bench/README.md has only one of the latest-run markers: fix it by hand');
  return `${text.trimEnd()}\n\n${block}\n`;
}

/** Rewrites the section and runs Biome's formatter on the file; returns a warning when Biome could not run. */
export async function writeReadmeSection(file: string, content: string, repoRoot: string): Promise<string | undefined> {
  await writeFile(file, spliceSection(await readFile(file, 'utf8'), content));
  const biome = path.join(repoRoot, 'node_modules', '.bin', 'biome');
  const formatted = spawnSync(biome, ['format', '--write', file], { cwd: repoRoot, encoding: 'utf8' });
  return formatted.status === 0 ? undefined : `biome format ${file} failed: ${formatted.stderr || formatted.error}`;
}
