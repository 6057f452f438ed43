// The settings of internal-record authentication (src/kafka/record-mac.ts): the cluster secret and its
// rotation (the keys' use is in cluster-key.ts), and the upgrade and incident switches.
import type { ClusterKey, ClusterKeys } from './cluster-key.ts';
import { ConfigError, type Env, bool, secretSetting } from './settings.ts';

/** Authentication of internal records (src/kafka/record-mac.ts): the upgrade and incident switches. */
export interface RecordAuthConfig {
  /** CHANGELOG_ACCEPT_UNSIGNED: restore accepts changelog records with no MAC at all (one upgrade, then off). */
  changelogAcceptUnsigned: boolean;
  /** LEGS_ACCEPT_UNSIGNED: repartition records (legs) with no MAC at all are applied (one upgrade, then off). */
  legsAcceptUnsigned: boolean;
  /** CHANGELOG_SKIP_RECORDS: exact changelog records ("topic:partition:offset") restore leaves out after an incident. */
  changelogSkipRecords: ReadonlySet<string>;
}

const RECORD_COORDINATE = /^([A-Za-z0-9._-]{1,249}):(0|[1-9][0-9]{0,8}):(0|[1-9][0-9]{0,18})$/;
const SKIP_RECORDS_MAX = 1000;

export function recordAuthConfig(env: Env): RecordAuthConfig {
  const raw = (env['CHANGELOG_SKIP_RECORDS'] ?? '').trim();
  const items = raw === '' ? [] : raw.split(',').map((item) => item.trim());
  if (items.length > SKIP_RECORDS_MAX)
    throw new ConfigError('CHANGELOG_SKIP_RECORDS', `at most ${SKIP_RECORDS_MAX} records, got ${items.length}`);
  for (const item of items) {
    if (!RECORD_COORDINATE.test(item)) {
      throw new ConfigError(
        'CHANGELOG_SKIP_RECORDS',
        `expected comma-separated topic:partition:offset (as the restore error names them), got ${JSON.stringify(item)}`,
      );
    }
  }
  return {
    changelogAcceptUnsigned: bool(env, 'CHANGELOG_ACCEPT_UNSIGNED', false),
    legsAcceptUnsigned: bool(env, 'LEGS_ACCEPT_UNSIGNED', false),
    changelogSkipRecords: new Set(items),
  };
}

/** A secret shorter than the HMAC-SHA256 output (32 bytes) weakens the MAC (RFC 2104 section 3). */
const CLUSTER_SECRET_CHARS_MIN = 32;
const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,32}$/;
const CLUSTER_SECRET_ID_DEFAULT = 'k1';

/**
 * CLUSTER_SECRET (or CLUSTER_SECRET_FILE) with CLUSTER_SECRET_ID, and optionally CLUSTER_SECRET_PREVIOUS
 * (or _FILE) with CLUSTER_SECRET_PREVIOUS_ID. Undefined when no secret is set: commands that need it
 * (the processor, the API) call requireClusterKeys, which stops start-up naming the variable.
 */
export function clusterKeysConfig(env: Env): ClusterKeys | undefined {
  if (!env['CLUSTER_SECRET'] && !env['CLUSTER_SECRET_FILE']) {
    for (const name of ['CLUSTER_SECRET_PREVIOUS', 'CLUSTER_SECRET_PREVIOUS_FILE', 'CLUSTER_SECRET_PREVIOUS_ID']) {
      if (env[name])
        throw new ConfigError(
          name,
          'is set but CLUSTER_SECRET is not (a previous key is only accepted next to a current one)',
        );
    }
    return undefined;
  }
  const current = clusterKey(env, 'CLUSTER_SECRET', CLUSTER_SECRET_ID_DEFAULT);
  const hasPrevious = Boolean(env['CLUSTER_SECRET_PREVIOUS'] || env['CLUSTER_SECRET_PREVIOUS_FILE']);
  if (!hasPrevious && env['CLUSTER_SECRET_PREVIOUS_ID']) {
    throw new ConfigError('CLUSTER_SECRET_PREVIOUS_ID', 'is set but CLUSTER_SECRET_PREVIOUS is not');
  }
  const previous = hasPrevious ? clusterKey(env, 'CLUSTER_SECRET_PREVIOUS', undefined) : undefined;
  if (previous && previous.id === current.id) {
    throw new ConfigError(
      'CLUSTER_SECRET_PREVIOUS_ID',
      `must differ from CLUSTER_SECRET_ID (both are ${JSON.stringify(current.id)}): a MAC names the key that made it`,
    );
  }
  if (previous && previous.secret.reveal() === current.secret.reveal()) {
    throw new ConfigError('CLUSTER_SECRET_PREVIOUS', 'is the same secret as CLUSTER_SECRET');
  }
  return { current, previous };
}

function clusterKey(env: Env, name: string, idFallback: string | undefined): ClusterKey {
  const secret = secretSetting(env, name, 'is required');
  if (secret.reveal().length < CLUSTER_SECRET_CHARS_MIN) {
    throw new ConfigError(
      name,
      `expected at least ${CLUSTER_SECRET_CHARS_MIN} characters, got ${secret.reveal().length}`,
    );
  }
  const idVariable = `${name}_ID`;
  const rawId = env[idVariable]?.trim() || idFallback;
  if (rawId === undefined)
    throw new ConfigError(idVariable, `is required with ${name} (the id the old key signed with)`);
  if (!KEY_ID_PATTERN.test(rawId))
    throw new ConfigError(
      idVariable,
      `expected 1 to 32 letters, digits, ".", "_" or "-", got ${JSON.stringify(rawId)}`,
    );
  return { id: rawId, secret };
}

/** The cluster keys, or a ConfigError naming CLUSTER_SECRET for a command that cannot run without them. */
export function requireClusterKeys(keys: ClusterKeys | undefined, what: string): ClusterKeys {
  if (!keys) {
    throw new ConfigError(
      'CLUSTER_SECRET',
      `is required by ${what}: at least ${CLUSTER_SECRET_CHARS_MIN} random characters, the same on every instance ` +
        '(or CLUSTER_SECRET_FILE); e.g. `openssl rand -base64 48`',
    );
  }
  return keys;
}
