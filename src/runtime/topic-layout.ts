// The topics an engine reads and writes, checked once at start: they exist, and the co-partitioned ones
// (sources and changelogs) share one partition count, the engine's partition count.
import type { Consumer } from '@platformatic/kafka';
import { changelogTopic } from '../topology/changelog.ts';
import type { Topology } from '../topology/topology.ts';
import { FatalStreamsError } from './errors.ts';

export class TopicLayout {
  readonly #counts = new Map<string, number>();
  #partitions = 0;

  /** The co-partitioned topics' partition count (0 before check()). */
  get partitions(): number {
    return this.#partitions;
  }

  /**
   * Reads the metadata of every topic the topology touches. A wrong password, an untrusted certificate, a
   * missing ACL or a missing topic fails here first (the caller decides what waiting can heal).
   */
  async check(
    consumer: Consumer,
    topology: Topology,
    applicationId: string,
    deadLetterTopics: string[],
  ): Promise<void> {
    const sourceTopics = topology.sourceTopics();
    const changelogs = topology
      .stores()
      .filter((s) => s.logged)
      .map((s) => changelogTopic(applicationId, s.name));
    const all = [...new Set([...sourceTopics, ...changelogs, ...topology.sinkTopics(), ...deadLetterTopics])];
    const metadata = await consumer.metadata({ topics: all });
    for (const topic of all) {
      const info = metadata.topics.get(topic);
      if (!info)
        throw new FatalStreamsError(
          'topics_missing',
          `topic ${topic} does not exist; create it with \`bankstream topics create\``,
        );
      this.#counts.set(topic, info.partitionsCount);
    }
    const copartitioned = [...sourceTopics, ...changelogs];
    const counts = copartitioned.map((t) => `${t}=${this.#counts.get(t)}`);
    const distinct = new Set(copartitioned.map((t) => this.#counts.get(t)));
    if (distinct.size !== 1)
      throw new FatalStreamsError(
        'topics_not_copartitioned',
        `input, repartition and changelog topics must have the same partition count: ${counts.join(', ')}`,
      );
    this.#partitions = [...distinct][0]!;
  }

  /** The partition count of a topic checked at start (a sink topic a processor writes to). */
  partitionCountOf(topic: string): number {
    const count = this.#counts.get(topic);
    if (count === undefined)
      throw new FatalStreamsError('topic_unknown', `sink topic ${topic} was not checked at start-up`);
    return count;
  }
}
