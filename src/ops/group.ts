// `bankstream group leave --instance <id>`: removes a stopped static member from the processor's consumer
// group (issue 20). A static member that stops keeps its membership (and its partitions) for the session
// timeout, so that a restart gets them back without a rebalance; an instance scaled away should give them
// up at once. It can leave itself on stop (LEAVE_GROUP_ON_CLOSE, `bankstream start --leave-group`); where
// it cannot be told in advance (a StatefulSet scaled down), an operator removes it afterwards with this,
// which sends the LeaveGroup the member would have sent (Kafka's `kafka-consumer-groups --delete` of a
// static member, Kafka Streams' removeMembersFromConsumerGroup).
import type { Config } from '../config/config.ts';
import { createAdmin } from './topics.ts';

export interface LeaveResult {
  /** Instances whose membership was removed (the group rebalances once). */
  removed: string[];
  /** Instances that were not static members of the group (already gone, or never joined). */
  absent: string[];
}

export async function removeStaticMembers(config: Config, instanceIds: readonly string[]): Promise<LeaveResult> {
  const admin = createAdmin(config, 'group');
  try {
    const groups = await admin.describeGroups({ groups: [config.appId] });
    const members = [...(groups.get(config.appId)?.members.values() ?? [])];
    const removed: string[] = [];
    const absent: string[] = [];
    const memberIds: string[] = [];
    for (const id of instanceIds) {
      const member = members.find((m) => m.groupInstanceId === id);
      if (member === undefined) absent.push(id);
      else {
        removed.push(id);
        memberIds.push(member.id);
      }
    }
    // By member id: the broker checks it against the static member's current one, so a member that
    // restarted in between (a new member id) is not removed by mistake.
    if (memberIds.length > 0)
      await admin.removeMembersFromConsumerGroup({
        groupId: config.appId,
        members: memberIds.map((memberId) => ({ memberId, reason: 'bankstream group leave (scaled away)' })),
      });
    return { removed, absent };
  } finally {
    await admin.close();
  }
}
