import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/config.ts';
import { changelogTopic } from '../../../src/topology/changelog.ts';

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('should use the documented defaults when the environment is empty', () => {
    const config = loadConfig({});

    expect(config.appId).toBe('bankstream');
    expect(config.partitions).toBe(12);
    expect(config.kafkaBrokers).toEqual(['127.0.0.1:9092']);
    expect(config.topics).toEqual({
      input: 'transaction_initiated',
      credits: 'bankstream-credits',
      completed: 'transaction_completed',
      failed: 'transaction_failed',
      audit: 'audit_log',
      dlq: 'transaction_initiated.dlq',
    });
    expect(new URL(config.databaseUrl).pathname).toBe('/bankstream');
    expect(config.sinkGroupId).toBe('bankstream-sink');
  });

  it('should take STANDBY_REPLICAS from 0 to 8 and refuse anything else naming the variable', () => {
    expect(loadConfig({}).standbyReplicas).toBe(0);
    expect(loadConfig({ STANDBY_REPLICAS: '1' }).standbyReplicas).toBe(1);
    for (const bad of ['9', '-1', 'one', '1.5']) {
      const error = configError({ STANDBY_REPLICAS: bad });
      expect(error.variable).toBe('STANDBY_REPLICAS');
      expect(error.message).toMatch(/between 0 and 8/);
    }
  });

  it('should take EXPIRY_STEP_BUDGET_MS from 1 to 1000 ms, ACCEPTABLE_RECOVERY_LAG_RECORDS from 0 and RECOVERY_LAG_MEASURE_TIMEOUT_MS from 0 to 60000 ms, refusing anything else naming the variable', () => {
    expect(loadConfig({})).toMatchObject({
      expiryStepBudgetMs: 20,
      acceptableRecoveryLagRecords: 10_000,
      recoveryLagMeasureTimeoutMs: 5_000,
    });
    expect(
      loadConfig({
        EXPIRY_STEP_BUDGET_MS: '5',
        ACCEPTABLE_RECOVERY_LAG_RECORDS: '0',
        RECOVERY_LAG_MEASURE_TIMEOUT_MS: '0',
      }),
    ).toMatchObject({
      expiryStepBudgetMs: 5,
      acceptableRecoveryLagRecords: 0,
      recoveryLagMeasureTimeoutMs: 0,
    });
    for (const [variable, bad] of [
      ['EXPIRY_STEP_BUDGET_MS', '0'],
      ['EXPIRY_STEP_BUDGET_MS', '1001'],
      ['EXPIRY_STEP_BUDGET_MS', '20ms'],
      ['ACCEPTABLE_RECOVERY_LAG_RECORDS', '-1'],
      ['ACCEPTABLE_RECOVERY_LAG_RECORDS', '1e4'],
      ['RECOVERY_LAG_MEASURE_TIMEOUT_MS', '-1'],
      ['RECOVERY_LAG_MEASURE_TIMEOUT_MS', '60001'],
      ['RECOVERY_LAG_MEASURE_TIMEOUT_MS', '5s'],
    ] as const) {
      expect(configError({ [variable]: bad }).variable).toBe(variable);
    }
  });

  it('should default PROCESSING_EXCEPTION_HANDLER to dead-letter, take fail, and refuse anything else naming the variable', () => {
    expect(loadConfig({}).processingExceptionHandler).toBe('dead-letter');
    expect(loadConfig({ PROCESSING_EXCEPTION_HANDLER: 'fail' }).processingExceptionHandler).toBe('fail');
    for (const bad of ['continue', 'DLQ', 'dead_letter']) {
      const error = configError({ PROCESSING_EXCEPTION_HANDLER: bad });
      expect(error.variable).toBe('PROCESSING_EXCEPTION_HANDLER');
    }
  });

  it('should default COMMIT_WHEN_CAUGHT_UP to true, take false, and refuse anything else naming the variable', () => {
    expect(loadConfig({}).commitWhenCaughtUp).toBe(true);
    expect(loadConfig({ COMMIT_WHEN_CAUGHT_UP: 'false' }).commitWhenCaughtUp).toBe(false);
    expect(loadConfig({ COMMIT_WHEN_CAUGHT_UP: ' 0 ' }).commitWhenCaughtUp).toBe(false);
    for (const bad of ['off', 'maybe', '2', 'truee']) {
      const error = configError({ COMMIT_WHEN_CAUGHT_UP: bad });
      expect(error.variable).toBe('COMMIT_WHEN_CAUGHT_UP');
      expect(error.message).toMatch(/true or false/);
    }
  });

  it('should take FETCH_MAX_WAIT_MS from 1 to 5000 and FETCH_MIN_BYTES from 1 to 16 MiB, refusing anything else naming the variable', () => {
    expect(loadConfig({})).toMatchObject({ fetchMaxWaitMs: 50, fetchMinBytes: 1 });
    expect(loadConfig({ FETCH_MAX_WAIT_MS: '20', FETCH_MIN_BYTES: '65536' })).toMatchObject({
      fetchMaxWaitMs: 20,
      fetchMinBytes: 65536,
    });
    for (const [variable, bad] of [
      ['FETCH_MAX_WAIT_MS', '0'],
      ['FETCH_MAX_WAIT_MS', '5001'],
      ['FETCH_MAX_WAIT_MS', '1e3'],
      ['FETCH_MIN_BYTES', '0'],
      ['FETCH_MIN_BYTES', String(16 * 1024 * 1024 + 1)],
      ['FETCH_MIN_BYTES', '-5'],
    ] as const) {
      expect(configError({ [variable]: bad }).variable, `${variable}=${bad}`).toBe(variable);
    }
  });

  it('should derive credits topic and sink group from APP_ID when they are not set', () => {
    const config = loadConfig({ APP_ID: 'bank2' });

    expect(config.topics.credits).toBe('bank2-credits');
    expect(config.sinkGroupId).toBe('bank2-sink');
    expect(changelogTopic(config.appId, 'balances')).toBe('bank2-balances-changelog');
  });

  it('should parse a list of brokers when KAFKA_BROKERS has several', () => {
    expect(loadConfig({ KAFKA_BROKERS: 'a:9092, b:9093,[::1]:9094' }).kafkaBrokers).toEqual([
      'a:9092',
      'b:9093',
      '[::1]:9094',
    ]);
  });

  it.each([
    ['PARTITIONS', 'abc'],
    ['PARTITIONS', '0'],
    ['PARTITIONS', '1.5'],
    ['PARTITIONS', '-3'],
    ['HTTP_PORT', '70000'],
    ['KAFKA_BROKERS', 'nohost'],
    ['KAFKA_BROKERS', 'host:0'],
    ['KAFKA_BROKERS', ','],
    ['DATABASE_URL', 'mysql://x'],
    ['DATABASE_URL', 'not a url'],
    ['LOG_LEVEL', 'loud'],
    ['APP_ID', 'bank stream'],
    ['TOPIC_INPUT', 'bad/topic'],
    ['ADVERTISED_URL', 'ftp://host'],
    ['SINK_BATCH_ROWS_MAX', '0'],
  ])('should name %s in the error when it is %j', (variable, value) => {
    const error = configError({ [variable]: value });

    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
    expect(error.code).toBe('config_invalid');
  });

  it('should quote the bad value in the error when a number is malformed', () => {
    expect(configError({ PARTITIONS: 'abc' }).message).toContain('"abc"');
  });
});
