// Prometheus metrics of one instance (prom-client). One Registry per instance, never prom-client's global
// one, so that two instances in one process (tests) do not collide; every series carries the default
// labels app and instance. Other components register their own metrics on `metrics.registry`, or
// through the get-or-create helpers below (safe to call with the same name twice).
//
// Values that the engine and the sink already keep (task counts, restored records, sink rows) are read
// at scrape time through `collect` callbacks instead of being pushed on every change.
import type { ExpiryStepResult } from '../stores/segmented-store.ts';
import {
  Counter,
  type CounterConfiguration,
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  Registry,
  collectDefaultMetrics,
} from 'prom-client';
import type { PartitionLag, StreamsState, StreamsStatus } from '../streams/status.ts';
import type { SinkStatus } from '../sinks/status.ts';
import { bindMembershipMetrics } from './membership.ts';
import { bindSinkMetrics } from './sink.ts';

const STREAMS_STATES: StreamsState[] = [
  'CREATED',
  'STARTING',
  'REBALANCING',
  'RUNNING',
  'STOPPING',
  'STOPPED',
  'FAILED',
];
// Request latencies from sub-millisecond reads to a 30 s `?wait`.
const HTTP_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Expiry steps are budgeted in milliseconds (20 ms by default): the buckets resolve around the budget. */
const EXPIRY_BUCKETS_S = [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1];
const RECORDS_BUCKETS = [1, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000];

export interface MetricsLabels {
  app: string;
  instance: string;
}

export interface CommitInfo {
  records: number;
  outputs: number;
  durationMs: number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  readonly commits: Counter;
  readonly commitDuration: Histogram;
  readonly commitRecords: Histogram;
  readonly recordsProcessed: Counter;
  readonly outcomes: Counter<'result' | 'code'>;
  readonly endToEndLatency: Histogram<'result'>;
  readonly proxied: Counter<'result'>;
  readonly processingErrors: Counter<'node' | 'phase'>;
  readonly fetchRoundRecords: Histogram;

  constructor(labels: MetricsLabels, options: { processMetrics?: boolean } = {}) {
    this.registry.setDefaultLabels({ app: labels.app, instance: labels.instance });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'bankstream_' });
    this.httpRequestDuration = this.histogram({
      name: 'bankstream_http_request_duration_seconds',
      help: 'HTTP request duration by route template, method and status',
      labelNames: ['method', 'route', 'status'],
      buckets: HTTP_BUCKETS_S,
    });
    this.commits = this.counter({
      name: 'bankstream_streams_commits_total',
      help: 'Kafka transactions committed by the stream processor',
    });
    this.commitDuration = this.histogram({
      name: 'bankstream_streams_commit_duration_seconds',
      help: 'Duration of one exactly-once commit',
      buckets: HTTP_BUCKETS_S,
    });
    this.commitRecords = this.histogram({
      name: 'bankstream_streams_commit_records',
      help: 'Input records per committed transaction',
      buckets: RECORDS_BUCKETS,
    });
    this.fetchRoundRecords = this.histogram({
      name: 'bankstream_streams_fetch_round_records',
      help: 'Input records per fetch round of the processing loop (its count is the rounds)',
      buckets: [0, ...RECORDS_BUCKETS],
    });
    this.recordsProcessed = this.counter({
      name: 'bankstream_streams_records_processed_total',
      help: 'Input records processed and committed',
    });
    this.outcomes = this.counter({
      name: 'bankstream_outcomes_total',
      help: 'Outcomes seen on transaction_completed / transaction_failed, by failure code',
      labelNames: ['result', 'code'],
    });
    this.endToEndLatency = this.histogram({
      name: 'bankstream_end_to_end_latency_seconds',
      help: 'Time from a command requestedAt to its outcome completedAt',
      labelNames: ['result'],
      buckets: LATENCY_BUCKETS_S,
    });
    this.processingErrors = this.counter({
      name: 'bankstream_streams_processing_errors_total',
      help: 'Records whose processing threw deterministically and went to the dead-letter topic, by node and phase (deserialize, prefetch, process)',
      labelNames: ['node', 'phase'],
    });
    this.proxied = this.counter({
      name: 'bankstream_http_proxied_queries_total',
      help: 'Account queries proxied to the owning instance, by result',
      labelNames: ['result'],
    });
  }

  counter<T extends string>(config: CounterConfiguration<T>): Counter<T> {
    return (
      (this.registry.getSingleMetric(config.name) as Counter<T> | undefined) ??
      new Counter({ ...config, registers: [this.registry] })
    );
  }

  gauge<T extends string>(config: GaugeConfiguration<T>): Gauge<T> {
    return (
      (this.registry.getSingleMetric(config.name) as Gauge<T> | undefined) ??
      new Gauge({ ...config, registers: [this.registry] })
    );
  }

  histogram<T extends string>(config: HistogramConfiguration<T>): Histogram<T> {
    return (
      (this.registry.getSingleMetric(config.name) as Histogram<T> | undefined) ??
      new Histogram({ ...config, registers: [this.registry] })
    );
  }

  /** Pass as KafkaStreams' onCommit. */
  observeCommit(info: CommitInfo): void {
    this.commits.inc();
    this.commitDuration.observe(info.durationMs / 1000);
    this.commitRecords.observe(info.records);
    this.recordsProcessed.inc(info.records);
  }

  /** Pass as KafkaStreams' onFetchRound. */
  observeFetchRound(info: { records: number }): void {
    this.fetchRoundRecords.observe(info.records);
  }

  /** Pass as KafkaStreams' onProcessingError. Counted when dead-lettered: an aborted transaction may count a record twice. */
  observeProcessingError(info: { node: string; phase: string }): void {
    this.processingErrors.inc({ node: info.node, phase: info.phase });
  }

  /** One dedup expiry step of a task (the bank topology's onExpiryStep). */
  observeExpiryStep(result: ExpiryStepResult, partition: number): void {
    this.histogram({
      name: 'bankstream_dedup_expiry_step_seconds',
      help: "Duration of one dedup expiry step: the processing loop's pause for it (its LevelDB calls run in the background)",
      buckets: EXPIRY_BUCKETS_S,
    }).observe(result.durationMs / 1000);
    const expired = this.counter({
      name: 'bankstream_dedup_expired_total',
      help: 'Dedup entries of expired segments purged from the local transfers store',
    });
    if (result.purged > 0) expired.inc(result.purged);
    const background = this.counter({
      name: 'bankstream_dedup_expiry_background_seconds_total',
      help: 'Wall time of the LevelDB calls dedup expiry ran in the background (purges, scans; nobody waits for them)',
    });
    if (result.backgroundMs > 0) background.inc(result.backgroundMs / 1000);
    const behind = this.gauge<'partition'>({
      name: 'bankstream_dedup_expiry_behind',
      help: '1 while a task still has expired segments to purge after its last step',
      labelNames: ['partition'],
    });
    behind.set({ partition: String(partition) }, result.caughtUp ? 0 : 1);
    if (result.storeEntries !== undefined) {
      this.gauge<'store' | 'partition'>({
        name: 'bankstream_store_entries',
        help: 'Entries of a task store (transfers: counted since the task opened, exact one retention after it)',
        labelNames: ['store', 'partition'],
      }).set({ store: 'transfers', partition: String(partition) }, result.storeEntries);
    }
    if (result.storeBytes !== undefined) {
      this.gauge<'store' | 'partition'>({
        name: 'bankstream_store_bytes',
        help: 'Approximate bytes on disk of a task store (LevelDB approximateSize)',
        labelNames: ['store', 'partition'],
      }).set({ store: 'transfers', partition: String(partition) }, result.storeBytes);
    }
  }

  /** One state cleanup of the engine (KafkaStreams onStateCleanup). */
  observeStateCleanup(deleted: string[]): void {
    const cleaned = this.counter({
      name: 'bankstream_state_folders_cleaned_total',
      help: 'Task state folders deleted after STATE_CLEANUP_DELAY_MS unused',
    });
    if (deleted.length > 0) cleaned.inc(deleted.length);
  }

  /** One outcome record: `code` is "completed" for transaction_completed. */
  observeOutcome(result: 'completed' | 'failed', code: string, latencyS: number | undefined): void {
    this.outcomes.inc({ result, code });
    if (latencyS !== undefined && latencyS >= 0) this.endToEndLatency.observe({ result }, latencyS);
  }

  /** A gauge read at scrape time (replaces an earlier one of the same name: the latest binding wins). */
  gaugeOf(name: string, help: string, read: () => number): void {
    this.registry.removeSingleMetric(name);
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  /** A gauge with one series per partition, read at scrape time (series of partitions gone are dropped). */
  partitionGauge(
    name: string,
    help: string,
    read: () => Array<{ topic: string; partition: number; records: number }>,
  ): void {
    this.registry.removeSingleMetric(name);
    new Gauge({
      name,
      help,
      labelNames: ['topic', 'partition'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { topic, partition, records } of read()) this.set({ topic, partition: String(partition) }, records);
      },
    });
  }

  /** Task gauges and restore counter, read from the engine at scrape time. */
  bindStreams(streams: { status(): StreamsStatus; lag(): PartitionLag[] }): void {
    this.registry.removeSingleMetric('bankstream_streams_state');
    new Gauge({
      name: 'bankstream_streams_state',
      help: '1 for the current state of the stream processor',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const current = streams.status().state;
        for (const s of STREAMS_STATES) this.set({ state: s }, s === current ? 1 : 0);
      },
    });
    this.partitionGauge(
      'bankstream_streams_lag_records',
      'Committed input records of each running task not processed yet',
      () => streams.lag(),
    );
    this.gaugeOf(
      'bankstream_streams_tasks_assigned',
      'Tasks (partitions) assigned to this instance',
      () => streams.status().assigned.length,
    );
    this.gaugeOf(
      'bankstream_streams_tasks_running',
      'Assigned tasks restored and processing',
      () => streams.status().running.length,
    );
    this.gaugeOf(
      'bankstream_streams_standby_tasks',
      "Standby tasks (warm copies of other instances' partitions) on this instance",
      () => streams.status().standby.length,
    );
    this.gaugeOf(
      'bankstream_streams_standby_lag_records',
      'Changelog records the standby tasks have not applied yet',
      () => streams.status().standbyLagRecords,
    );
    this.counterOf(
      'bankstream_streams_restored_records_total',
      'Changelog records restored into local stores',
      () => streams.status().restoredRecords,
    );
    bindMembershipMetrics(this.registry, () => streams.status().membership);
    this.stoppedGauge(
      'bankstream_streams_partitions_stopped',
      'Assigned source partitions that do not run (offsets_missing, offset_out_of_range); see docs/operations.md',
      () => streams.status().stopped,
    );
    // Authenticated internal records (src/kafka/record-mac.ts): any refusal is an alert.
    this.counterOf(
      'bankstream_internal_records_rejected_total',
      'Internal (repartition) records refused for a missing or wrong MAC, sent to the DLQ and never applied',
      () => streams.status().internalRecords.rejectedRecords,
    );
    this.counterOf(
      'bankstream_internal_records_unsigned_accepted_total',
      'Internal records without a MAC applied because LEGS_ACCEPT_UNSIGNED is on',
      () => streams.status().internalRecords.unsignedAccepted,
    );
    this.counterOf(
      'bankstream_internal_records_previous_key_total',
      'Internal records verified with CLUSTER_SECRET_PREVIOUS (a key rotation still draining)',
      () => streams.status().internalRecords.previousKeyAccepted,
    );
  }

  /** Sink gauges and counters, read from the sink at scrape time (sink.ts). */
  bindSink(sink: { status(): SinkStatus; lag(): PartitionLag[] }): void {
    bindSinkMetrics(this, sink);
  }

  /** 1 per stopped topic-partition, labelled with the reason code (series of healed partitions are dropped). */
  stoppedGauge(
    name: string,
    help: string,
    read: () => Array<{ topic: string; partition: number; code: string }>,
  ): void {
    this.registry.removeSingleMetric(name);
    new Gauge({
      name,
      help,
      labelNames: ['topic', 'partition', 'code'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { topic, partition, code } of read()) this.set({ topic, partition: String(partition), code }, 1);
      },
    });
  }

  /**
   * Broker outages per component (streams, standby, sink, api-outcomes, instances), read at scrape time:
   * the current outage's length (0 while the broker answers) and the retries made waiting for it.
   */
  bindBrokerHealth(health: {
    components(): Array<{ component: string; unavailableSeconds(): number; retriesTotal: number }>;
  }): void {
    for (const name of ['bankstream_broker_unavailable_seconds', 'bankstream_broker_retries_total'])
      this.registry.removeSingleMetric(name);
    new Gauge({
      name: 'bankstream_broker_unavailable_seconds',
      help: 'Seconds the component has been waiting for the broker (0 while it answers)',
      labelNames: ['component'],
      registers: [this.registry],
      collect() {
        for (const c of health.components()) this.set({ component: c.component }, c.unavailableSeconds());
      },
    });
    const last = new Map<string, number>();
    new Counter({
      name: 'bankstream_broker_retries_total',
      help: 'Broker calls retried because the broker was unavailable',
      labelNames: ['component'],
      registers: [this.registry],
      collect() {
        for (const c of health.components()) {
          const before = last.get(c.component) ?? 0;
          this.inc({ component: c.component }, Math.max(0, c.retriesTotal - before));
          last.set(c.component, Math.max(before, c.retriesTotal));
        }
      },
    });
  }

  /** A counter mirroring a cumulative value kept elsewhere: increments by the difference at each scrape. */
  counterOf(name: string, help: string, read: () => number): void {
    this.registry.removeSingleMetric(name);
    let last = 0;
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        const value = read();
        if (value > last) this.inc(value - last);
        last = Math.max(last, value);
      },
    });
  }
}
