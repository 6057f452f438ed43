// The Kafka ACLs each bankstream role needs, derived from the same topic plan as `bankstream topics`
// (so a renamed topic or a new store changes the ACLs with it), printed as kafka-acls commands or
// applied through the Admin API. docs/security.md explains each line.
//
//   processor  the exactly-once engine: its consumer group, its transactional ids (<appId>-<instanceId>),
//              read input, read+write credits and changelogs, write the outcome topics
//   api        the HTTP API inside an instance: write commands to the input topic, read the outcome
//              topics, read+write the instances topic (routing)
//   sink       the Postgres sink: its consumer group, read the outcome topics
//   upstream   systems that send commands: write the input topic, nothing else
//   operator   `bankstream topics create|describe`: create and describe every topic
import {
  Admin,
  AclOperations,
  AclPermissionTypes,
  ResourcePatternTypes,
  ResourceTypes,
  type Acl,
  type AclOperationLabel,
} from '@platformatic/kafka';
import type { Config } from '../config/config.ts';
import { explainKafkaError, kafkaConnectionOptions } from '../kafka/security.ts';
import { DEFAULT_STORE_NAMES, type TopicRole, plannedTopics } from './topics.ts';

export const ACL_ROLES = ['processor', 'api', 'sink', 'upstream', 'operator'] as const;
export type AclRole = (typeof ACL_ROLES)[number];

export type AclResourceType = 'TOPIC' | 'GROUP' | 'TRANSACTIONAL_ID' | 'CLUSTER';
export type AclPatternType = 'LITERAL' | 'PREFIXED';

/** One resource a role's principal may act on, with every operation it needs there. */
export interface AclGrant {
  role: AclRole;
  principal: string;
  resourceType: AclResourceType;
  resourceName: string;
  patternType: AclPatternType;
  operations: AclOperationLabel[];
  /** Why the role needs it, one phrase (printed as a comment). */
  why: string;
}

/** Kafka principals per role ("User:<name>"). */
export type RolePrincipals = Record<AclRole, string>;

/** Defaults: User:<appId> for the processor and the API (one process), User:<appId>-<role> otherwise. */
export function defaultPrincipals(appId: string): RolePrincipals {
  return {
    processor: `User:${appId}`,
    api: `User:${appId}`,
    sink: `User:${appId}-sink`,
    upstream: `User:${appId}-upstream`,
    operator: `User:${appId}-operator`,
  };
}

type TopicAccess = { operations: AclOperationLabel[]; why: string } | undefined;

const READ: AclOperationLabel[] = ['READ', 'DESCRIBE'];
const WRITE: AclOperationLabel[] = ['WRITE', 'DESCRIBE'];
const READ_WRITE: AclOperationLabel[] = ['READ', 'WRITE', 'DESCRIBE'];

// What each role does with each kind of topic. A Record, so a new TopicRole does not compile until every
// role says whether it needs it.
const TOPIC_ACCESS: Record<Exclude<AclRole, 'operator'>, Record<TopicRole, TopicAccess>> = {
  processor: {
    input: { operations: READ, why: 'consume commands' },
    credits: { operations: READ_WRITE, why: 'send and consume transfer legs' },
    changelog: { operations: READ_WRITE, why: 'write store changes, restore stores' },
    completed: { operations: WRITE, why: 'emit outcomes' },
    failed: { operations: WRITE, why: 'emit outcomes' },
    audit: { operations: WRITE, why: 'emit account events' },
    dlq: { operations: WRITE, why: 'dead-letter unparseable commands' },
    instances: undefined,
  },
  api: {
    input: { operations: WRITE, why: 'POST commands' },
    credits: undefined,
    changelog: undefined,
    completed: { operations: READ, why: 'wait for outcomes' },
    failed: { operations: READ, why: 'wait for outcomes' },
    audit: { operations: READ, why: 'wait for account events' },
    dlq: undefined,
    instances: { operations: READ_WRITE, why: 'publish and follow which instance owns which partition' },
  },
  sink: {
    input: undefined,
    credits: undefined,
    changelog: undefined,
    completed: { operations: READ, why: 'copy outcomes to Postgres' },
    failed: { operations: READ, why: 'copy outcomes to Postgres' },
    audit: { operations: READ, why: 'copy account events to Postgres' },
    dlq: undefined,
    instances: undefined,
  },
  upstream: {
    input: { operations: WRITE, why: 'send commands' },
    credits: undefined,
    changelog: undefined,
    completed: undefined,
    failed: undefined,
    audit: undefined,
    dlq: undefined,
    instances: undefined,
  },
};

/** Every grant of the given roles, for the topics `bankstream topics create` plans. */
export function plannedAcls(
  config: Config,
  principals: RolePrincipals,
  roles: readonly AclRole[] = ACL_ROLES,
  stores: readonly string[] = DEFAULT_STORE_NAMES,
): AclGrant[] {
  const topics = plannedTopics(config, stores);
  const grants: AclGrant[] = [];
  for (const role of roles) {
    const principal = principals[role];
    const grant = (
      resourceType: AclResourceType,
      resourceName: string,
      patternType: AclPatternType,
      operations: AclOperationLabel[],
      why: string,
    ) => grants.push({ role, principal, resourceType, resourceName, patternType, operations, why });
    if (role === 'operator') {
      for (const topic of topics)
        grant('TOPIC', topic.name, 'LITERAL', ['CREATE', 'DESCRIBE', 'DESCRIBE_CONFIGS'], 'create and check the topic');
      continue;
    }
    for (const topic of topics) {
      const access = TOPIC_ACCESS[role][topic.role];
      if (access) grant('TOPIC', topic.name, 'LITERAL', access.operations, access.why);
    }
    if (role === 'processor') {
      grant('GROUP', config.appId, 'LITERAL', ['READ', 'DESCRIBE'], 'join the group, commit offsets in transactions');
      // One transactional id per instance, <appId>-<instanceId>: a prefix covers every instance.
      grant(
        'TRANSACTIONAL_ID',
        `${config.appId}-`,
        'PREFIXED',
        ['WRITE', 'DESCRIBE'],
        'exactly-once transactions of every instance',
      );
    }
    if (role === 'sink') grant('GROUP', config.sinkGroupId, 'LITERAL', ['READ', 'DESCRIBE'], 'join the sink group');
    if (role !== 'sink') {
      // Idempotent producers; needed by brokers before 2.8, where a topic WRITE grant does not imply it.
      grant('CLUSTER', 'kafka-cluster', 'LITERAL', ['IDEMPOTENT_WRITE'], 'idempotent producer');
    }
  }
  return grants;
}

const KAFKA_ACLS_OPERATION: Partial<Record<AclOperationLabel, string>> = {
  READ: 'Read',
  WRITE: 'Write',
  CREATE: 'Create',
  DESCRIBE: 'Describe',
  DESCRIBE_CONFIGS: 'DescribeConfigs',
  IDEMPOTENT_WRITE: 'IdempotentWrite',
};

const KAFKA_ACLS_RESOURCE: Record<AclResourceType, string> = {
  TOPIC: '--topic',
  GROUP: '--group',
  TRANSACTIONAL_ID: '--transactional-id',
  CLUSTER: '--cluster',
};

/** Shell-quotes a word unless it is made of safe characters only. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9._:/=@+-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * One `kafka-acls --add` command per grant, preceded by a comment naming the role and the reason.
 * `command` is the tool with its connection arguments, e.g.
 * "kafka-acls.sh --bootstrap-server broker:9093 --command-config admin.properties".
 */
export function kafkaAclsCommands(grants: readonly AclGrant[], command: string): string[] {
  const lines: string[] = [];
  let role: AclRole | undefined;
  for (const grant of grants) {
    if (grant.role !== role) {
      role = grant.role;
      lines.push(`# ${role}: ${grant.principal}`);
    }
    const words = [command, '--add', '--allow-principal', shellWord(grant.principal)];
    for (const operation of grant.operations) {
      const name = KAFKA_ACLS_OPERATION[operation];
      if (!name) throw new Error(`no kafka-acls name for operation ${operation}`);
      words.push('--operation', name);
    }
    words.push(KAFKA_ACLS_RESOURCE[grant.resourceType]);
    if (grant.resourceType !== 'CLUSTER') words.push(shellWord(grant.resourceName));
    if (grant.patternType === 'PREFIXED') words.push('--resource-pattern-type', 'prefixed');
    lines.push(`${words.join(' ')}   # ${grant.why}`);
  }
  return lines;
}

/** The grants as Admin API ACL bindings (one per operation), all ALLOW from any host. */
export function aclBindings(grants: readonly AclGrant[]): Acl[] {
  return grants.flatMap((grant) =>
    grant.operations.map((operation) => ({
      resourceType: ResourceTypes[grant.resourceType],
      resourceName: grant.resourceName,
      resourcePatternType: ResourcePatternTypes[grant.patternType],
      principal: grant.principal,
      host: '*',
      operation: AclOperations[operation],
      permissionType: AclPermissionTypes.ALLOW,
    })),
  );
}

/**
 * Creates the grants on the cluster through the Admin API (as the configured principal, which needs
 * ALTER on the cluster: a super user or an operator). Creating an existing ACL changes nothing.
 */
export async function applyAcls(config: Config, grants: readonly AclGrant[]): Promise<number> {
  const admin = new Admin({
    clientId: `${config.appId}-${config.instanceId}-acls`,
    bootstrapBrokers: config.kafkaBrokers,
    ...kafkaConnectionOptions(config.kafkaSecurity, config.kafkaBrokers),
    timeout: 30_000,
    retries: 3,
    retryDelay: 500,
    strict: true,
  });
  try {
    const creations = aclBindings(grants);
    await admin.createAcls({ creations });
    await waitUntilVisible(admin, creations, ACLS_VISIBLE_TIMEOUT_MS);
    return creations.length;
  } catch (error) {
    throw explainKafkaError(error, config.kafkaSecurity) ?? error;
  } finally {
    await admin.close();
  }
}

const ACLS_VISIBLE_TIMEOUT_MS = 15_000;

/**
 * CreateAcls returns once the controller has recorded the ACLs; brokers apply them when they replay the
 * metadata log, a moment later. Waits until the answering broker describes every binding, so that a
 * client started right after `acls apply` is not refused.
 */
async function waitUntilVisible(admin: Admin, bindings: Acl[], timeoutMs: number): Promise<void> {
  const key = (acl: Acl) =>
    [
      acl.resourceType,
      acl.resourceName,
      acl.resourcePatternType,
      acl.principal,
      acl.host,
      acl.operation,
      acl.permissionType,
    ].join('\u0000');
  const wanted = new Set(bindings.map(key));
  const principals = [...new Set(bindings.map((acl) => acl.principal))];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = new Set<string>();
    for (const principal of principals) {
      const resources = await admin.describeAcls({
        filter: {
          resourceType: ResourceTypes.ANY,
          resourceName: null,
          resourcePatternType: ResourcePatternTypes.ANY,
          principal,
          host: null,
          operation: AclOperations.ANY,
          permissionType: AclPermissionTypes.ANY,
        },
      });
      for (const resource of resources) {
        for (const acl of resource.acls) seen.add(key({ ...resource, ...acl }));
      }
    }
    if ([...wanted].every((binding) => seen.has(binding))) return;
    if (Date.now() > deadline)
      throw new Error(`the ACLs were created but the broker did not show all of them within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
