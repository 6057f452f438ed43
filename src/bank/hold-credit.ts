// Holds, the to task's side (README-BANK "Holds"): it checks `to` once (hold_credit), then turns the
// pending credit into money (hold_post) or drops it (hold_release). The mark of (from, holdId) makes each
// leg apply at most once: a verbatim copy of a signed leg verifies, so it must find nothing to do.
import { isRefusal, usableAccount } from './accounts.ts';
import type { HoldLeg } from './hold-legs.ts';
import { type HoldTask, sendHoldLeg } from './holds.ts';

type ToLeg = Extract<HoldLeg, { leg: 'hold_credit' | 'hold_post' | 'hold_release' }>;

export function onToLeg(task: HoldTask, leg: ToLeg): void {
  const { holdId, from } = leg;
  const mark = task.holds.mark(from, holdId);
  if (leg.leg === 'hold_credit') {
    if (mark !== undefined) {
      copy(task, leg, mark.status);
      return;
    }
    const target = usableAccount(task, leg.to, leg.currency);
    if (isRefusal(target)) {
      task.holds.putMark(from, holdId, { to: leg.to, amount: leg.amount.toString(), status: 'refused' });
      task.holds.forgetLater('c', from, holdId, task.out.nowMs);
      sendHoldLeg(task, { leg: 'hold_refused', holdId, from, code: target.code, reason: target.reason });
      return;
    }
    task.stores.adjustPending(leg.to, 0n, leg.amount);
    task.holds.putMark(from, holdId, { to: leg.to, amount: leg.amount.toString(), status: 'pending' });
    sendHoldLeg(task, { leg: 'hold_accepted', holdId, from });
    return;
  }
  if (mark?.status !== 'pending' || mark.to !== leg.to) {
    copy(task, leg, mark?.status ?? 'unknown');
    return;
  }
  const held = BigInt(mark.amount);
  if (leg.leg === 'hold_post' && leg.amount > held) {
    copy(task, leg, 'pending, for less');
    return;
  }
  task.stores.adjustPending(leg.to, 0n, -held);
  // Resolved either way below: the mark is kept one retention (a copied leg still finds it), then forgotten.
  task.holds.forgetLater('c', from, holdId, task.out.nowMs);
  if (leg.leg === 'hold_release') {
    task.holds.putMark(from, holdId, { ...mark, status: 'released' });
    return;
  }
  task.stores.adjust(leg.to, leg.amount);
  task.holds.putMark(from, holdId, { ...mark, status: 'posted' });
  sendHoldLeg(task, { leg: 'hold_settle', holdId, from });
}

function copy(task: HoldTask, leg: ToLeg, state: string): void {
  task.out.deadLetter(
    `${leg.leg} leg for hold ${leg.holdId} from ${leg.from} does not match its pending credit (${state}): not applied`,
  );
}
