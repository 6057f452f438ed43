// The names of the application's topics: the ones it reads and writes (TOPIC_*), and the internal ones
// named after APP_ID.
import { type Env, str } from './settings.ts';

export interface TopicNames {
  input: string;
  credits: string;
  completed: string;
  failed: string;
  audit: string;
  dlq: string;
}

/** TOPIC_*: each a Kafka topic name; the credits topic is named after APP_ID unless set. */
export function topicNames(env: Env, appId: string): TopicNames {
  const topic = (name: string, fallback: string) =>
    str(env, name, fallback, /^[A-Za-z0-9._-]{1,249}$/, 'a Kafka topic name (letters, digits, ".", "_", "-")');
  return {
    input: topic('TOPIC_INPUT', 'transaction_initiated'),
    credits: topic('TOPIC_CREDITS', `${appId}-credits`),
    completed: topic('TOPIC_COMPLETED', 'transaction_completed'),
    failed: topic('TOPIC_FAILED', 'transaction_failed'),
    audit: topic('TOPIC_AUDIT', 'audit_log'),
    dlq: topic('TOPIC_DLQ', 'transaction_initiated.dlq'),
  };
}

/** The compacted topic where instances publish which partitions they run (interactive-query routing). */
export function instancesTopic(appId: string): string {
  return `${appId}-instances`;
}
