// Creates and checks every topic bankstream uses, up front (the broker's auto-creation is never
// relied on). Input, credits and changelog topics must share one partition count: a task is one
// input partition and owns the same partition of credits and of every changelog, so a mismatch
// would route records to tasks that do not own their state. Partitions can be added but never
// removed, so nothing is created while an existing topic already disagrees.
import {
  Admin,
  type ConfigDescription,
  ConfigResourceTypes,
  IncrementalAlterConfigOperationTypes,
  findErrorBy,
} from '@platformatic/kafka';
import { BANK_STORES, defaultDedupSegmentIntervalMs } from '../bank/stores.ts';
import { SegmentedKeyValueStore } from '../stores/segmented-store.ts';
import { type Config, instancesTopic } from '../config/config.ts';
import { changelogTopic } from '../topology/changelog.ts';
import type { Logger } from '../config/logger.ts';
import { explainKafkaError, kafkaConnectionOptions } from '../kafka/security.ts';

/** The state stores of the bank topology; the engine may pass its own list instead. */
export const DEFAULT_STORE_NAMES: readonly string[] = BANK_STORES;

export type TopicRole = 'input' | 'credits' | 'changelog' | 'completed' | 'failed' | 'audit' | 'dlq' | 'instances';

export interface TopicSpec {
  name: string;
  role: TopicRole;
  partitions: number;
  replicationFactor: number;
  /** Shares the input topic's partition count (input, credits, changelogs). */
  coPartitioned: boolean;
  configs: Record<string, string>;
}

export interface TopicState {
  spec: TopicSpec;
  exists: boolean;
  partitions?: number;
  cleanupPolicy?: string;
  retentionMs?: string;
}

export interface EnsureTopicsResult {
  created: string[];
  existing: string[];
  /** Existing changelogs whose cleanup.policy / retention.ms were altered to the planned ones. */
  altered: string[];
  topics: TopicState[];
}

/**
 * Stores whose entries expire by time (segmented, src/stores/segmented-store.ts): their changelog
 * forgets old records by time retention too (compact,delete) instead of one tombstone per entry.
 */
const TIME_RETAINED_STORES: ReadonlySet<string> = new Set(['transfers']);

/** The changelog configs of a store: compacted, plus time retention for the segmented dedup store. */
export function changelogConfigs(config: Config, store: string): Record<string, string> {
  if (!TIME_RETAINED_STORES.has(store)) return { 'cleanup.policy': 'compact' };
  const retentionMs = SegmentedKeyValueStore.changelogRetentionMs(
    config.dedupRetentionMs,
    defaultDedupSegmentIntervalMs(config.dedupRetentionMs),
  );
  return { 'cleanup.policy': 'compact,delete', 'retention.ms': String(retentionMs) };
}

/** Topic layout problems (co-partitioning, cleanup policy); `problems` holds one line each. */
export class TopicLayoutError extends Error {
  readonly code = 'topic_layout_invalid';
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`topic layout is invalid:\n  ${problems.join('\n  ')}`);
    this.name = 'TopicLayoutError';
    this.problems = problems;
  }
}

export interface TopicsOptions {
  stores?: readonly string[];
  logger?: Logger;
}

/** max.message.bytes of the DLQ topic. */
export const DLQ_MESSAGE_BYTES_MAX = 2 * 1024 * 1024;

/** Every topic bankstream needs, with its partition count and configuration. */
export function plannedTopics(config: Config, stores: readonly string[] = DEFAULT_STORE_NAMES): TopicSpec[] {
  const minIsr = { 'min.insync.replicas': String(config.minInsyncReplicas) };
  const spec = (
    name: string,
    role: TopicRole,
    coPartitioned: boolean,
    extra: Record<string, string> = {},
  ): TopicSpec => ({
    name,
    role,
    partitions: config.partitions,
    replicationFactor: config.replicationFactor,
    coPartitioned,
    configs: { ...minIsr, ...extra },
  });
  return [
    spec(config.topics.input, 'input', true),
    spec(config.topics.credits, 'credits', true),
    ...stores.map((store) =>
      spec(changelogTopic(config.appId, store), 'changelog', true, changelogConfigs(config, store)),
    ),
    spec(config.topics.completed, 'completed', false),
    spec(config.topics.failed, 'failed', false),
    spec(config.topics.audit, 'audit', false),
    // A dead letter is an input record, untouched, plus error headers: an input record at the broker's size
    // limit (message.max.bytes, 1 MiB by default) would not fit a DLQ with the same limit, and its commit would
    // fail on every retry. The DLQ takes twice the default.
    spec(config.topics.dlq, 'dlq', false, { 'max.message.bytes': String(DLQ_MESSAGE_BYTES_MAX) }),
    // Interactive-query routing metadata (src/cluster/directory.ts): the latest record per instance id is all
    // that matters, so compacted. Readers tail every partition; the count just follows PARTITIONS.
    spec(instancesTopic(config.appId), 'instances', false, { 'cleanup.policy': 'compact' }),
  ];
}

/** Creates the missing topics, leaves existing ones alone, then verifies the layout. */
export async function ensureTopics(config: Config, options: TopicsOptions = {}): Promise<EnsureTopicsResult> {
  checkReplication(config);
  const specs = plannedTopics(config, options.stores);
  const admin = createAdmin(config, 'topics');
  try {
    const before = await describeWith(admin, specs);
    // Refuse before creating anything: a topic created with the wrong count cannot be shrunk.
    throwIfProblems(layoutProblems(before, config.partitions, { configDrift: false }));
    const created: string[] = [];
    const existing: string[] = [];
    for (const state of before) {
      if (state.exists || !(await createTopic(admin, state.spec))) existing.push(state.spec.name);
      else created.push(state.spec.name);
    }
    // A changelog of the layout before time retention is altered, not left to fail the start-up check.
    const altered = await alterChangelogConfigs(
      admin,
      before.filter((state) => state.exists && changelogConfigDrift(state).length > 0),
    );
    options.logger?.info({ created, existing, altered }, 'topics ensured');
    const after = await describeWith(admin, specs);
    throwIfProblems(layoutProblems(after, config.partitions));
    return { created, existing, altered, topics: after };
  } catch (error) {
    throw explainKafkaError(error, config.kafkaSecurity) ?? error;
  } finally {
    await admin.close();
  }
}

/** Describes every planned topic as it is on the cluster, without changing anything. */
export async function describeTopics(config: Config, options: TopicsOptions = {}): Promise<TopicState[]> {
  const admin = createAdmin(config, 'topics-describe');
  try {
    return await describeWith(admin, plannedTopics(config, options.stores));
  } catch (error) {
    throw explainKafkaError(error, config.kafkaSecurity) ?? error;
  } finally {
    await admin.close();
  }
}

/** Throws TopicLayoutError unless every planned topic exists with a valid layout (start-up check). */
export async function verifyTopics(config: Config, options: TopicsOptions = {}): Promise<TopicState[]> {
  const topics = await describeTopics(config, options);
  const missing = topics
    .filter((topic) => !topic.exists)
    .map((topic) => `${topic.spec.name} (${topic.spec.role}) does not exist; run "bankstream topics create"`);
  throwIfProblems([...missing, ...layoutProblems(topics, config.partitions)]);
  return topics;
}

/**
 * The layout problems among existing topics, one sentence each: co-partitioned topics whose
 * partition count is not PARTITIONS (the engine and the partitioner rely on that one number), and
 * changelogs that are not compacted (they would lose state to retention), and (unless
 * `configDrift: false`, for a caller about to alter them) changelog configs that differ from the planned ones.
 */
export function layoutProblems(
  topics: TopicState[],
  configuredPartitions: number,
  options: { configDrift?: boolean } = {},
): string[] {
  const problems: string[] = [];
  const coPartitioned = topics.filter((topic) => topic.spec.coPartitioned && topic.exists);
  if (coPartitioned.some((topic) => topic.partitions !== configuredPartitions)) {
    const listing = coPartitioned.map((topic) => `${topic.spec.name}=${topic.partitions}`).join(', ');
    problems.push(
      `co-partitioned topics (input, credits, changelogs) must all have PARTITIONS=${configuredPartitions} partitions; found ${listing}`,
    );
  }
  for (const topic of topics) {
    if (
      topic.spec.role === 'changelog' &&
      topic.exists &&
      !(topic.cleanupPolicy ?? '').split(',').includes('compact')
    ) {
      problems.push(
        `changelog ${topic.spec.name} has cleanup.policy=${topic.cleanupPolicy ?? 'unknown'}, expected compact`,
      );
    } else if (topic.exists && options.configDrift !== false) {
      for (const drift of changelogConfigDrift(topic))
        problems.push(`changelog ${topic.spec.name} has ${drift}; run "bankstream topics create" to alter it`);
    }
  }
  return problems;
}

/**
 * How an existing changelog's cleanup.policy / retention.ms differ from the planned ones, one phrase
 * each. Time retention shorter than planned would drop live dedup entries on restore; time retention
 * on a changelog planned compact-only would lose state; compact alone on the dedup changelog keeps
 * every expired id forever.
 */
export function changelogConfigDrift(topic: TopicState): string[] {
  if (topic.spec.role !== 'changelog') return [];
  const drift: string[] = [];
  const planned = topic.spec.configs['cleanup.policy'] ?? 'compact';
  const policies = new Set((topic.cleanupPolicy ?? '').split(',').map((p) => p.trim()));
  const plannedPolicies = new Set(planned.split(','));
  if (policies.size !== plannedPolicies.size || [...plannedPolicies].some((p) => !policies.has(p))) {
    drift.push(`cleanup.policy=${topic.cleanupPolicy ?? 'unknown'}, expected ${planned}`);
  }
  const plannedRetention = topic.spec.configs['retention.ms'];
  if (plannedRetention !== undefined && topic.retentionMs !== plannedRetention) {
    drift.push(`retention.ms=${topic.retentionMs ?? 'unknown'}, expected ${plannedRetention}`);
  }
  return drift;
}

async function alterChangelogConfigs(admin: Admin, states: TopicState[]): Promise<string[]> {
  if (states.length === 0) return [];
  const SET = IncrementalAlterConfigOperationTypes.SET;
  await admin.incrementalAlterConfigs({
    resources: states.map((state) => ({
      resourceType: ConfigResourceTypes.TOPIC,
      resourceName: state.spec.name,
      configs: (['cleanup.policy', 'retention.ms'] as const)
        .filter((name) => state.spec.configs[name] !== undefined)
        .map((name) => ({ name, configOperation: SET, value: state.spec.configs[name] as string })),
    })),
  });
  return states.map((state) => state.spec.name);
}

function throwIfProblems(problems: string[]): void {
  if (problems.length > 0) throw new TopicLayoutError(problems);
}

function checkReplication(config: Config): void {
  if (config.minInsyncReplicas > config.replicationFactor) {
    // Producers with acks=all would fail every write with NOT_ENOUGH_REPLICAS.
    throw new TopicLayoutError([
      `MIN_INSYNC_REPLICAS=${config.minInsyncReplicas} exceeds REPLICATION_FACTOR=${config.replicationFactor}`,
    ]);
  }
}

/** An admin client of the configured brokers and security, named after what it is for. */
export function createAdmin(config: Config, purpose: string): Admin {
  return new Admin({
    clientId: `${config.appId}-${config.instanceId}-${purpose}`,
    bootstrapBrokers: config.kafkaBrokers,
    ...kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
    timeout: 30_000,
    retries: 3,
    retryDelay: 500,
    autocreateTopics: false,
    strict: true,
  });
}

/** Creates one topic; returns false when another process created it first. */
async function createTopic(admin: Admin, spec: TopicSpec): Promise<boolean> {
  try {
    await admin.createTopics({
      topics: [spec.name],
      partitions: spec.partitions,
      replicas: spec.replicationFactor,
      configs: Object.entries(spec.configs).map(([name, value]) => ({ name, value })),
    });
    return true;
  } catch (error) {
    if (findErrorBy(error as Error, 'apiId', 'TOPIC_ALREADY_EXISTS')) return false;
    throw error;
  }
}

async function describeWith(admin: Admin, specs: TopicSpec[]): Promise<TopicState[]> {
  const names = new Set(await admin.listTopics({ includeInternals: false }));
  const present = specs.filter((spec) => names.has(spec.name)).map((spec) => spec.name);
  if (present.length === 0) return specs.map((spec) => ({ spec, exists: false }));
  const metadata = await admin.metadata({ topics: present, forceUpdate: true, autocreateTopics: false });
  const configs = await admin.describeConfigs({
    resources: present.map((name) => ({
      resourceType: ConfigResourceTypes.TOPIC,
      resourceName: name,
      configurationKeys: ['cleanup.policy', 'retention.ms'],
    })),
  });
  return specs.map((spec) => {
    const topic = metadata.topics.get(spec.name);
    if (!names.has(spec.name) || !topic) return { spec, exists: false };
    const state: TopicState = {
      spec,
      exists: true,
      partitions: topic.partitionsCount,
      cleanupPolicy: configValue(configs, spec.name, 'cleanup.policy'),
    };
    const retentionMs = configValue(configs, spec.name, 'retention.ms');
    if (retentionMs !== undefined) state.retentionMs = retentionMs;
    return state;
  });
}

function configValue(configs: ConfigDescription[], topic: string, key: string): string | undefined {
  const description = configs.find((config) => config.resourceName === topic);
  return description?.configs.find((config) => config.name === key)?.value ?? undefined;
}
