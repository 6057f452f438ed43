// The Postgres sink's metrics, read from the sink at scrape time.
import type { SinkStatus } from '../sinks/status.ts';
import type { PartitionLag } from '../streams/status.ts';

/** The scrape-time helpers of Metrics (metrics.ts) this file uses: named here so sink.ts need not import it. */
interface ScrapeMetrics {
  partitionGauge(
    name: string,
    help: string,
    read: () => Array<{ topic: string; partition: number; records: number }>,
  ): void;
  gaugeOf(name: string, help: string, read: () => number): void;
  counterOf(name: string, help: string, read: () => number): void;
  stoppedGauge(name: string, help: string, read: () => Array<{ topic: string; partition: number; code: string }>): void;
}

export function bindSinkMetrics(metrics: ScrapeMetrics, sink: { status(): SinkStatus; lag(): PartitionLag[] }): void {
  metrics.partitionGauge(
    'bankstream_sink_lag_records',
    'Committed outcome and audit records not written to PostgreSQL yet',
    () => sink.lag(),
  );
  metrics.gaugeOf('bankstream_postgres_up', '0 while the sink is paused because PostgreSQL is unreachable', () =>
    sink.status().state === 'paused-db-down' ? 0 : 1,
  );
  metrics.gaugeOf('bankstream_sink_running', '1 while the Postgres sink is running', () =>
    sink.status().state === 'running' ? 1 : 0,
  );
  metrics.counterOf(
    'bankstream_sink_rows_written_total',
    'Rows the Postgres sink inserted',
    () => sink.status().rowsWritten,
  );
  metrics.counterOf(
    'bankstream_sink_batches_written_total',
    'Batches the Postgres sink committed',
    () => sink.status().batchesWritten,
  );
  metrics.counterOf(
    'bankstream_sink_rejects_total',
    'Records the sink could not turn into rows (this process)',
    () => sink.status().rejectsWritten,
  );
  // An alarm: each unresolved reject may be money the ledger moved and Postgres does not show.
  metrics.gaugeOf(
    'bankstream_sink_unresolved_rejects',
    'Records kept in sink_rejects and not resolved by an operator (read from PostgreSQL); > 0 means the read model differs from the ledger',
    () => sink.status().unresolvedRejects?.count ?? 0,
  );
  metrics.stoppedGauge(
    'bankstream_sink_partitions_stopped',
    'Sink partitions that do not run (offsets_missing, offset_out_of_range); see docs/operations.md',
    () => sink.status().stoppedPartitions,
  );
}
