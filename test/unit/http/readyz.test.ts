// /readyz with a stopped partition: the processor's (offsets missing, out of range) or the sink's.
import { Router } from '@koa/router';
import Koa from 'koa';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import type { ApiDeps } from '../../../src/http/context.ts';
import { Metrics } from '../../../src/metrics/metrics.ts';
import { errorHandler, requestContext } from '../../../src/http/middleware.ts';
import { managementRoutes } from '../../../src/http/routes/system.ts';
import type { StreamsStatus } from '../../../src/streams/status.ts';
import type { PartitionStop } from '../../../src/kafka/offset-reset.ts';
import type { SinkStatus } from '../../../src/sinks/status.ts';
import { type Served, serve } from './serve.ts';

const stop: PartitionStop = {
  topic: 'transaction_initiated',
  partition: 1,
  code: 'offset_out_of_range',
  reason: 'position 4 of transaction_initiated-1 is out of range',
  action: 'bankstream offsets reset …',
};
let streamsStatus: StreamsStatus;
let sinkStatus: SinkStatus;
let brokerUnavailable: Array<{ component: string; sinceMs: number; retries: number; step: string; lastError: string }> =
  [];
let app: Served;

const baseStreams = (): StreamsStatus => ({
  state: 'RUNNING',
  generationId: 3,
  assigned: [0, 1],
  running: [0, 1],
  standby: [],
  standbyLagRecords: 0,
  restoredRecords: 0,
  stopped: [],
  internalRecords: {
    rejectedRecords: 0,
    lastRejected: undefined,
    unsignedAccepted: 0,
    previousKeyAccepted: 0,
    acceptingUnsigned: false,
  },
  brokerUnavailableSinceMs: undefined,
  membership: {
    groupInstanceId: 'instance-0',
    generationId: 3,
    rebalances: { start: 1, group_rebalance: 0, member_expired: 0, generation_stale: 0, rejoin: 0 },
    unassignedMs: 0,
  },
});
const baseSink = (): SinkStatus => ({
  state: 'running',
  lastError: null,
  rowsWritten: 0,
  rejectsWritten: 0,
  batchesWritten: 0,
  assignedPartitions: 2,
  consecutiveFailures: 0,
  stoppedPartitions: [],
  unresolvedRejects: null,
});

beforeAll(async () => {
  // Only what /readyz reads: the processor's and the sink's status, the directory and the URL.
  const deps = {
    config: loadConfig({}),
    streams: { status: () => streamsStatus, brokerHealth: { unavailable: () => brokerUnavailable } },
    sink: { status: () => sinkStatus },
    directory: { instances: () => [] },
    selfUrl: () => 'http://127.0.0.1:1',
  } as unknown as ApiDeps;
  const router = new Router();
  // The detailed /readyz (management port; an admin token on the API port): the public one says only ready.
  managementRoutes(router, deps);
  const koa = new Koa();
  koa.silent = true;
  koa.use(
    requestContext(pino({ level: 'silent' }), new Metrics({ app: 'a', instance: 'i' }, { processMetrics: false })),
  );
  koa.use(errorHandler());
  koa.use(router.routes());
  app = await serve(koa.callback());
});

afterAll(async () => {
  await app.close();
});

async function readyz(): Promise<{
  status: number;
  body: { ready: boolean; streams: StreamsStatus; sink: SinkStatus };
}> {
  const response = await fetch(`${app.url}/readyz`);
  return {
    status: response.status,
    body: (await response.json()) as { ready: boolean; streams: StreamsStatus; sink: SinkStatus },
  };
}

describe('/readyz', () => {
  it('should be ready when every assigned partition runs and nothing is stopped', async () => {
    streamsStatus = baseStreams();
    sinkStatus = baseSink();
    expect(await readyz()).toMatchObject({ status: 200, body: { ready: true } });
  });

  it('should be not ready and name the partition and the way out when a processor partition is stopped', async () => {
    streamsStatus = { ...baseStreams(), running: [0], stopped: [stop] };
    sinkStatus = baseSink();
    const answer = await readyz();
    expect(answer.status).toBe(503);
    expect(answer.body.streams.stopped).toEqual([stop]);
  });

  it('should be not ready when a sink partition is stopped even though every task runs', async () => {
    streamsStatus = baseStreams();
    sinkStatus = { ...baseSink(), stoppedPartitions: [{ ...stop, topic: 'audit_log' }] };
    const answer = await readyz();
    expect(answer.status).toBe(503);
    expect(answer.body.sink.stoppedPartitions[0]).toMatchObject({ topic: 'audit_log', code: 'offset_out_of_range' });
  });

  it('should be not ready and name the waiting components when the broker is unavailable', async () => {
    streamsStatus = baseStreams();
    sinkStatus = baseSink();
    brokerUnavailable = [
      { component: 'sink', sinceMs: Date.now() - 5000, retries: 3, step: 'fetch', lastError: 'Connection closed' },
    ];
    try {
      const response = await fetch(`${app.url}/readyz`);
      const body = (await response.json()) as { ready: boolean; reasons: string[]; brokerUnavailable: unknown[] };
      expect(response.status).toBe(503);
      expect(body.reasons.some((reason) => reason.includes('broker: unavailable to sink'))).toBe(true);
      expect(body.brokerUnavailable).toHaveLength(1);
    } finally {
      brokerUnavailable = [];
    }
  });
});
