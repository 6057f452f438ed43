// The one place a store's changelog topic name is made: the engine writes and restores it, the topics
// tool creates it, the reconcile tool reads it, the test driver simulates it.

/** The changelog topic of a store, named as Kafka Streams names them: `<appId>-<store>-changelog`. */
export function changelogTopic(applicationId: string, store: string): string {
  return `${applicationId}-${store}-changelog`;
}
