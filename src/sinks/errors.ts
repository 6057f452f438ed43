// Errors of the Postgres sink, grouped by what the sink does about them: every one of these is an
// operating error (the database or the broker is unreachable, a lock timed out, a rebalance moved
// a partition); the sink pauses, backs off and resumes from the offsets stored in Postgres.

/** Postgres refused or could not be reached; the pending batch is dropped and re-read later. */
export class SinkDatabaseError extends Error {
  readonly code = 'sink_database_error';
  /** The SQLSTATE when Postgres answered, or the socket error code (ECONNREFUSED...). */
  readonly sqlState: string | undefined;
  constructor(operation: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(`${operation}: ${detail || (cause as { code?: string }).code || 'unknown error'}`, { cause });
    this.name = 'SinkDatabaseError';
    this.sqlState = (cause as { code?: string } | null)?.code;
  }
}

/** Kafka could not be read (fetch, metadata, offsets); the sink retries from Postgres' offsets. */
export class SinkKafkaError extends Error {
  readonly code = 'sink_kafka_error';
  constructor(operation: string, cause: unknown) {
    super(`${operation}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'SinkKafkaError';
  }
}

/** Runs a database step, tagging any failure as a SinkDatabaseError. */
export async function databaseStep<T>(operation: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw error instanceof SinkDatabaseError ? error : new SinkDatabaseError(operation, error);
  }
}

/** Runs a Kafka step, tagging any failure as a SinkKafkaError. */
export async function kafkaStep<T>(operation: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw error instanceof SinkKafkaError ? error : new SinkKafkaError(operation, error);
  }
}
