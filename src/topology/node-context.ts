// The ProcessorContext handed to one processor node: it reads through the task's graph and forwards
// to that node's children only. The graph is seen through NodeHost, which TaskGraph implements.
import type { TaskGraphOptions } from './task-records.ts';
import { type ProcessorNode, TopologyError } from './topology.ts';
import type { Cancellable, KeyValueStore, ProcessorContext, PunctuationType, Rec, RecordMetadata } from './types.ts';

/** What a node's context needs of its task's graph. */
export interface NodeHost {
  readonly partition: number;
  readonly options: TaskGraphOptions;
  readonly streamTimeMs: number;
  recordMetadata(): RecordMetadata | undefined;
  deliver(childName: string, rec: Rec): void;
  schedule(
    intervalMs: number,
    type: PunctuationType,
    punctuator: (timestampMs: number) => void | Promise<void>,
    node: string,
  ): Cancellable;
}

/** The context handed to one processor node: reads through the task, forwards to that node's children. */
export class NodeContext implements ProcessorContext {
  readonly #graph: NodeHost;
  readonly #node: ProcessorNode;

  constructor(graph: NodeHost, node: ProcessorNode) {
    this.#graph = graph;
    this.#node = node;
  }

  get applicationId(): string {
    return this.#graph.options.applicationId;
  }

  get taskId(): string {
    return String(this.#graph.partition);
  }

  get partition(): number {
    return this.#graph.partition;
  }

  get partitions(): number {
    return this.#graph.options.partitions;
  }

  partitionForKey(key: string): number {
    return this.#graph.options.partitionForKey(Buffer.from(key, 'utf8'), this.#graph.options.partitions);
  }

  recordMetadata(): RecordMetadata | undefined {
    return this.#graph.recordMetadata();
  }

  getStore<V>(name: string): KeyValueStore<V> {
    if (!this.#node.stores.includes(name)) {
      throw new TopologyError(`processor ${this.#node.name} is not connected to store ${name}`);
    }
    const store = this.#graph.options.stores.get(name);
    if (!store) throw new TopologyError(`store ${name} is not open in task ${this.taskId}`);
    return store as unknown as KeyValueStore<V>;
  }

  forward(rec: Rec, childName?: string): void {
    if (childName !== undefined) {
      if (!this.#node.children.includes(childName)) {
        throw new TopologyError(`processor ${this.#node.name} has no child ${childName}`);
      }
      this.#graph.deliver(childName, rec);
      return;
    }
    for (const child of this.#node.children) this.#graph.deliver(child, rec);
  }

  currentStreamTimeMs(): number {
    return this.#graph.streamTimeMs;
  }

  currentSystemTimeMs(): number {
    return this.#graph.options.nowMs();
  }

  schedule(
    intervalMs: number,
    type: PunctuationType,
    punctuator: (timestampMs: number) => void | Promise<void>,
  ): Cancellable {
    return this.#graph.schedule(intervalMs, type, punctuator, this.#node.name);
  }
}
