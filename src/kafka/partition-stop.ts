// Why a partition does not run (offsets fail closed): a leaf, read by the engine, the sink and the API.

export type PartitionStopCode = 'offsets_missing' | 'offset_out_of_range';

/** Why one topic-partition does not run, and the way out, for logs, readiness and metrics. */
export interface PartitionStop {
  topic: string;
  partition: number;
  code: PartitionStopCode;
  reason: string;
  /** The operator command that heals it. */
  action: string;
}
