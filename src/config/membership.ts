// Static group membership settings (issue 20; src/runtime/membership.ts).
import { ConfigError, type Env, bool, int } from './settings.ts';

export interface MembershipConfig {
  /** STATIC_MEMBERSHIP: join the group with group.instance.id = INSTANCE_ID (default true). */
  staticMembership: boolean;
  /** LEAVE_GROUP_ON_CLOSE (or `bankstream start --leave-group`): leave the group on stop, for a scale-down. */
  leaveGroupOnClose: boolean;
  /** SESSION_TIMEOUT_MS: how long the group waits for a silent member (a static one's partitions wait as long). */
  sessionTimeoutMs: number;
}

export function membershipConfig(env: Env): MembershipConfig {
  const staticMembership = bool(env, 'STATIC_MEMBERSHIP', true);
  const leaveGroupOnClose = bool(env, 'LEAVE_GROUP_ON_CLOSE', false);
  // A dynamic member always leaves on stop: asking it not to is a setting that would silently not hold.
  if (!staticMembership && (env['LEAVE_GROUP_ON_CLOSE'] ?? '').trim() !== '' && !leaveGroupOnClose)
    throw new ConfigError(
      'LEAVE_GROUP_ON_CLOSE',
      'false needs STATIC_MEMBERSHIP=true: without static membership an instance always leaves the group when it stops',
    );
  // The broker's defaults bound the session timeout (group.min.session.timeout.ms 6 s, group.max 30 min).
  return {
    staticMembership,
    leaveGroupOnClose,
    sessionTimeoutMs: int(env, 'SESSION_TIMEOUT_MS', 10_000, 6000, 1_800_000),
  };
}
