// Unique topic names per test run, and their removal afterwards.
import { randomBytes } from 'node:crypto';
import { Admin } from '@platformatic/kafka';

export const TEST_BROKERS = (process.env.TEST_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');

/** The cluster secret every test instance shares (CLUSTER_SECRET): test-only, never a real deployment's. */
export const TEST_CLUSTER_SECRET = 'bankstream-test-cluster-secret-0123456789abcdef';

/** A prefix no other test run uses: letters and digits only, valid in topic and group names. */
export function uniquePrefix(label: string): string {
  return `t${label}${randomBytes(4).toString('hex')}`;
}

/** Environment for loadConfig() that names every topic, the app id and groups after a prefix. */
export function prefixedEnv(prefix: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    APP_ID: prefix,
    KAFKA_BROKERS: TEST_BROKERS.join(','),
    TOPIC_INPUT: `${prefix}-transaction_initiated`,
    TOPIC_COMPLETED: `${prefix}-transaction_completed`,
    TOPIC_FAILED: `${prefix}-transaction_failed`,
    TOPIC_AUDIT: `${prefix}-audit_log`,
    TOPIC_DLQ: `${prefix}-transaction_initiated.dlq`,
    LOG_LEVEL: 'warn',
    CLUSTER_SECRET: TEST_CLUSTER_SECRET,
    ...extra,
  };
}

export function createTestAdmin(): Admin {
  return new Admin({ clientId: 'bankstream-test', bootstrapBrokers: TEST_BROKERS, timeout: 30_000, retries: 3 });
}

/** Deletes every topic whose name starts with the prefix. */
export async function deleteTopicsWithPrefix(prefix: string): Promise<void> {
  const admin = createTestAdmin();
  try {
    const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } finally {
    await admin.close();
  }
}
