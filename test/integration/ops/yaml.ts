// YAML for the deployment checks, parsed by a real YAML implementation: PyYAML (python3) for every
// file, and in addition `docker compose config` for the compose file where the Docker client has
// the compose plugin. The project has no YAML package of its own; python3 with PyYAML is part of the machine image
// here and in CI. No parser at all is an error, never a skip: these checks are the only ones the
// deployment files get.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PYTHONS = ['python3', '/usr/bin/python3'];

// Loads every document of every file (YAML 1.1 merge keys included, as Docker Compose reads them)
// and prints them as JSON: [[doc, doc, ...], ...] in the order of the arguments.
const LOAD_ALL = `
import json, sys, yaml
out = []
for name in sys.argv[1:]:
    with open(name, encoding="utf-8") as f:
        out.append([doc for doc in yaml.safe_load_all(f) if doc is not None])
json.dump(out, sys.stdout, default=str)
`;

let python: string | null | undefined;

function findPython(): string | null {
  if (python !== undefined) return python;
  python =
    PYTHONS.find((candidate) => spawnSync(candidate, ['-c', 'import yaml'], { stdio: 'ignore' }).status === 0) ?? null;
  return python;
}

/** Every document of each file, parsed by PyYAML. Throws with a clear message when no parser is installed. */
export function parseYamlFiles(files: string[]): unknown[][] {
  const interpreter = findPython();
  if (!interpreter)
    throw new Error(
      'no YAML parser: install python3 with PyYAML (Debian: apt-get install python3-yaml) to check the deployment files',
    );
  return JSON.parse(
    execFileSync(interpreter, ['-c', LOAD_ALL, ...files], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }),
  ) as unknown[][];
}

export function parseYamlFile(file: string): unknown[] {
  return parseYamlFiles([file])[0]!;
}

/** True when `docker compose` (the v2 plugin) runs; the engine need not be up for `config`. */
export function dockerComposeAvailable(): boolean {
  return spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status === 0;
}

/** Runs `docker compose config --quiet` (schema, interpolation, merge keys); returns its error output, '' when valid. */
export function dockerComposeProblems(file: string): string {
  const result = spawnSync('docker', ['compose', '-f', file, 'config', '--quiet'], { encoding: 'utf8' });
  return result.status === 0 ? '' : `${result.stderr}${result.stdout}`.trim() || `exit status ${result.status}`;
}

/** True when the Python Compose v1 (`docker-compose`, Debian's package) runs. */
export function dockerComposeV1Available(): boolean {
  return spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0;
}

/**
 * `docker-compose config -q` of Compose v1 on a copy without the top-level `name` (a v2 addition that
 * v1 rejects); relative paths still resolve from the original's folder. '' when valid.
 */
export function dockerComposeV1Problems(file: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'compose-check-'));
  const copy = path.join(dir, 'docker-compose.yml');
  try {
    writeFileSync(copy, readFileSync(file, 'utf8').replace(/^name: .*\n/m, ''));
    const result = spawnSync(
      'docker-compose',
      ['-f', copy, '--project-directory', path.dirname(file), 'config', '-q'],
      { encoding: 'utf8' },
    );
    return result.status === 0 ? '' : `${result.stderr}${result.stdout}`.trim() || `exit status ${result.status}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
