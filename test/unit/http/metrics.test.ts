import { describe, expect, it } from 'vitest';
import { NetworkError } from '@platformatic/kafka';
import { Metrics } from '../../../src/metrics/metrics.ts';
import { BrokerHealth } from '../../../src/kafka/retry.ts';

describe('Metrics', () => {
  it('should label every series with app and instance when scraped', async () => {
    const metrics = new Metrics({ app: 'bank', instance: 'i1' }, { processMetrics: false });
    metrics.observeCommit({ records: 5, outputs: 7, durationMs: 12 });

    const text = await metrics.registry.metrics();

    expect(text).toContain('bankstream_streams_commits_total{app="bank",instance="i1"} 1');
    expect(text).toContain('bankstream_streams_records_processed_total{app="bank",instance="i1"} 5');
  });

  it('should count fetch rounds and the records each brought, empty rounds included', async () => {
    const metrics = new Metrics({ app: 'bank', instance: 'i1' }, { processMetrics: false });
    for (const records of [0, 3, 700]) metrics.observeFetchRound({ records });

    const text = await metrics.registry.metrics();

    expect(text).toContain('bankstream_streams_fetch_round_records_count{app="bank",instance="i1"} 3');
    expect(text).toContain('bankstream_streams_fetch_round_records_sum{app="bank",instance="i1"} 703');
    expect(text).toContain('bankstream_streams_fetch_round_records_bucket{le="0",app="bank",instance="i1"} 1');
    expect(text).toContain('bankstream_streams_fetch_round_records_bucket{le="10",app="bank",instance="i1"} 2');
  });

  it('should count dead-lettered processing exceptions by node and phase when the engine reports them', async () => {
    const metrics = new Metrics({ app: 'bank', instance: 'i1' }, { processMetrics: false });
    metrics.observeProcessingError({ node: 'bank', phase: 'process' });
    metrics.observeProcessingError({ node: 'bank', phase: 'process' });

    expect(await metrics.registry.metrics()).toContain(
      'bankstream_streams_processing_errors_total{node="bank",phase="process",app="bank",instance="i1"} 2',
    );
  });

  it('should mirror a cumulative value as a counter when it grows between scrapes', async () => {
    const metrics = new Metrics({ app: 'bank', instance: 'i1' }, { processMetrics: false });
    let value = 3;
    metrics.counterOf('test_rows_total', 'rows', () => value);

    expect(await metrics.registry.metrics()).toContain('test_rows_total{app="bank",instance="i1"} 3');
    value = 10;
    expect(await metrics.registry.metrics()).toContain('test_rows_total{app="bank",instance="i1"} 10');
  });

  it('should return the existing metric when a component registers the same name twice', () => {
    const metrics = new Metrics({ app: 'bank', instance: 'i1' }, { processMetrics: false });

    expect(metrics.counter({ name: 'x_total', help: 'x' })).toBe(metrics.counter({ name: 'x_total', help: 'x' }));
  });

  it('should report the broker outage of each component and retries when the broker is unavailable, and 0 once it answers', async () => {
    const metrics = new Metrics({ app: 'bank', instance: 'i1' }, { processMetrics: false });
    const health = new BrokerHealth();
    metrics.bindBrokerHealth(health);
    health.outage('streams');
    const sink = health.outage('sink');
    sink.failed('sink fetch', new NetworkError('Connection closed'), 100);
    sink.failed('sink fetch', new NetworkError('Connection closed'), 200);

    const during = await metrics.registry.metrics();
    expect(during).toContain('bankstream_broker_unavailable_seconds{component="streams",app="bank",instance="i1"} 0');
    expect(during).toMatch(/bankstream_broker_unavailable_seconds\{component="sink",app="bank",instance="i1"\} \d/);
    expect(during).toContain('bankstream_broker_retries_total{component="sink",app="bank",instance="i1"} 2');
    sink.recovered();
    const after = await metrics.registry.metrics();
    expect(after).toContain('bankstream_broker_unavailable_seconds{component="sink",app="bank",instance="i1"} 0');
    expect(after).toContain('bankstream_broker_retries_total{component="sink",app="bank",instance="i1"} 2');
  });
});
