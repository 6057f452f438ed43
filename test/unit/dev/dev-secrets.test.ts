import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { devAuthSecret, devClusterSecret } from '../../../src/dev/api.ts';

const homes: string[] = [];
afterEach(async () => {
  await Promise.all(homes.splice(0).map((home) => rm(home, { recursive: true, force: true })));
});

describe('dev secrets', () => {
  it('should keep a cluster secret in the home, readable by its owner only, and reuse it when started again', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'bankstream-devsecret-'));
    homes.push(home);
    const first = (await devClusterSecret(home)).secret;
    const again = (await devClusterSecret(home)).secret;
    const auth = await devAuthSecret(home);

    expect(again).toBe(first);
    expect(auth).not.toBe(first);
    expect((await readFile(path.join(home, 'cluster-secret'), 'utf8')).trim()).toBe(first);
    expect((await stat(path.join(home, 'cluster-secret'))).mode & 0o777).toBe(0o600);
    // Long enough for the configuration, which the API requires.
    expect(loadConfig({ CLUSTER_SECRET: first }).clusterKeys?.current.id).toBe('k1');
  });
});
