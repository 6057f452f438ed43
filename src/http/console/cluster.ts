// The console's topology and cluster views (issue 24), computed from what the instance already knows:
// the topology the engine runs (its nodes, stores and repartition topics), the signed instance directory
// (every instance's claim: state, generation, running and standby partitions) and this instance's own status.
import type { InstanceRecord } from '../../cluster/directory-records.ts';
import { changelogTopic } from '../../topology/changelog.ts';
import type { Topology } from '../../topology/topology.ts';

export interface TopologyView {
  nodes: Array<{
    name: string;
    kind: 'source' | 'processor' | 'sink';
    /** Source: the topics read; sink: the topic written. */
    topics: string[];
    stores: string[];
    children: string[];
  }>;
  stores: Array<{ name: string; logged: boolean; changelog: string | null }>;
  /** Topics written by a sink and read back by a source of the same topology (the credits loop). */
  repartitionTopics: string[];
  /** The engine's text description (as Kafka Streams' TopologyDescription). */
  text: string;
}

export function topologyView(topology: Topology, appId: string): TopologyView {
  return {
    nodes: topology.nodes().map((node) => ({
      name: node.name,
      kind: node.kind,
      topics: node.kind === 'source' ? [...node.topics] : node.kind === 'sink' ? [node.topic] : [],
      stores: node.kind === 'processor' ? [...node.stores] : [],
      children: node.kind === 'sink' ? [] : [...node.children],
    })),
    stores: topology.stores().map((store) => ({
      name: store.name,
      logged: store.logged,
      changelog: store.logged ? changelogTopic(appId, store.name) : null,
    })),
    repartitionTopics: topology.repartitionTopics(),
    text: topology.describe(),
  };
}

/** One directory record, as InstanceDirectory.instances() lists them. */
export type DirectoryClaim = InstanceRecord;

/** What this instance knows of itself (KafkaStreams.status()). */
export interface LocalStatus {
  instanceId: string;
  state: string;
  generationId: number | undefined;
  assigned: number[];
  running: number[];
  standby: number[];
  stopped: Array<{ partition: number; code: string }>;
}

/**
 * running: claimed by an instance of the newest generation; restoring: assigned here, not running yet;
 * moving: claimed only in an older generation, or by nobody (a rebalance or a handover in progress);
 * stopped: assigned here and stopped (offsets missing or out of range, see docs/operations.md).
 */
export type PartitionState = 'running' | 'restoring' | 'moving' | 'stopped';

export interface PartitionCell {
  partition: number;
  state: PartitionState;
  /** The instance running it (running), being restored on (restoring) or last running it (moving). */
  owner: string | null;
  standbys: string[];
  /** Consumer lag (records) when this instance runs it. */
  lag: number | null;
}

export interface ClusterView {
  partitions: number;
  generation: number | null;
  instances: DirectoryClaim[];
  grid: PartitionCell[];
}

export function clusterView(
  partitions: number,
  claims: DirectoryClaim[],
  local: LocalStatus,
  lag: Array<{ partition: number; records: number }>,
): ClusterView {
  const generations = claims.map((c) => c.generation).concat(local.generationId ?? -1);
  const generation = Math.max(-1, ...generations);
  const lagOf = new Map(lag.map((l) => [l.partition, l.records]));
  const stopped = new Set(local.stopped.map((s) => s.partition));
  const grid: PartitionCell[] = [];
  for (let partition = 0; partition < partitions; partition++) {
    const holders = claims.filter((c) => c.partitions.includes(partition));
    const current = holders.find((c) => c.generation === generation && c.state === 'RUNNING');
    const standbys = claims.filter((c) => c.standby?.includes(partition)).map((c) => c.instanceId);
    const cell = (state: PartitionState, owner: string | null): PartitionCell => ({
      partition,
      state,
      owner,
      standbys,
      lag: lagOf.get(partition) ?? null,
    });
    if (local.assigned.includes(partition) && stopped.has(partition)) grid.push(cell('stopped', local.instanceId));
    else if (local.assigned.includes(partition) && !local.running.includes(partition))
      grid.push(cell('restoring', local.instanceId));
    else if (local.state === 'RUNNING' && local.running.includes(partition) && local.generationId === generation)
      grid.push(cell('running', local.instanceId));
    else if (current) grid.push(cell('running', current.instanceId));
    else {
      const last = holders.sort((a, b) => b.generation - a.generation)[0];
      grid.push(cell('moving', last?.instanceId ?? null));
    }
  }
  const instances = [...claims].sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  return { partitions, generation: generation >= 0 ? generation : null, instances, grid };
}
