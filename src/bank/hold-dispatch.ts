// Where the processor hands holds over (README-BANK "Holds"): a hold command or hold leg parsed once,
// the store keys it will read (prefetch), the idempotency gate, then holds.ts (from side) or
// hold-credit.ts (to side). A routed post or void (hold_route leg) is decided as the command it carries.
import type { PrefetchCollector } from '../topology/types.ts';
import { type AnyHoldCommand, parseHoldCommand, type HoldFields, type ParsedHold } from './hold-commands.ts';
import { currencyDigits, formatMoney } from './money.ts';
import { onToLeg } from './hold-credit.ts';
import { HOLD_LEG_MARK, type HoldLeg, parseHoldLeg } from './hold-legs.ts';
import { holdKey, markKey } from './hold-store.ts';
import { failHold, type HoldTask, onExpireLeg, onFromLeg, placeHold, resolveHold, sendHoldLeg } from './holds.ts';
import { dedupVerdict, prefetchKeys, type BankStores } from './stores.ts';

export type HoldWork =
  | {
      readonly kind: 'hold';
      readonly parsed: ParsedHold;
      readonly toIsLocal: boolean;
      /** The record key as the dedup scope of a refused command (processor.ts dedupScopeOfKey). */
      readonly recordKey: string;
    }
  | { readonly kind: 'hold_leg'; readonly leg: HoldLeg | { error: string } };

/** A command record commands.ts refused as a dead letter: a hold command, or undefined (the dead letter stands). */
export function parseHoldRecord(
  key: Buffer | null,
  bytes: Buffer,
  timestampMs: number,
  recordKey: string,
  ownsAccount: (accountId: string) => boolean,
): HoldWork | undefined {
  const parsed = parseHoldCommand(key, bytes, timestampMs);
  if (parsed === undefined) return undefined;
  return { kind: 'hold', parsed, toIsLocal: isLocalHold(parsed, ownsAccount), recordKey };
}

/** A leg whose value starts as a hold leg does; undefined for the transfer legs. */
export function parseHoldLegRecord(
  key: Buffer | null,
  bytes: Buffer,
  ownsAccount: (accountId: string) => boolean,
): HoldWork | undefined {
  if (!bytes.subarray(0, HOLD_LEG_MARK.length).equals(HOLD_LEG_MARK)) return undefined;
  const leg = parseHoldLeg(key, bytes);
  if ('error' in leg || leg.leg !== 'hold_route') return { kind: 'hold_leg', leg };
  const parsed = parseHoldCommand(leg.from, Buffer.from(leg.command, 'utf8'), leg.timestamp);
  if (parsed === undefined || parsed.kind === 'route' || parsed.kind === 'dead_letter') {
    return {
      kind: 'hold_leg',
      leg: { error: `hold_route leg from ${leg.from}: its command is no post_hold or void_hold` },
    };
  }
  return { kind: 'hold', parsed, toIsLocal: isLocalHold(parsed, ownsAccount), recordKey: leg.from };
}

function isLocalHold(parsed: ParsedHold, ownsAccount: (accountId: string) => boolean): boolean {
  return parsed.kind === 'hold_command' && parsed.command.type === 'hold' && ownsAccount(parsed.command.to);
}

/** Exactly the keys the work's handler reads. */
export function collectHoldKeys(work: HoldWork, keys: PrefetchCollector, transfers: BankStores['transfers']): void {
  const { account, dedup } = prefetchKeys(keys, transfers);
  if (work.kind === 'hold_leg') {
    const leg = work.leg;
    if ('error' in leg || leg.leg === 'hold_route') return;
    if (leg.leg === 'hold_credit' || leg.leg === 'hold_post' || leg.leg === 'hold_release') {
      keys.add('holds', markKey(leg.from, leg.holdId));
      account(leg.to);
      return;
    }
    keys.add('holds', holdKey(leg.from, leg.holdId));
    if (leg.leg === 'hold_expire') {
      account(leg.from);
      return;
    }
    account(leg.from);
    dedup(leg.from, leg.holdId);
    return;
  }
  const parsed = work.parsed;
  if (parsed.kind === 'hold_rejected') dedup(work.recordKey, parsed.fields['transferId']!);
  if (parsed.kind !== 'hold_command') return;
  const command = parsed.command;
  dedup(command.from, command.transferId);
  account(command.from);
  if (command.type === 'hold') {
    keys.add('holds', holdKey(command.from, command.transferId));
    if (work.toIsLocal && command.to !== command.from) account(command.to);
  } else keys.add('holds', holdKey(command.from, command.holdId));
}

/** Processes hold work; `bytes` and `timestampMs` are the record's (a routed command is sent on unchanged). */
export function processHold(task: HoldTask, work: HoldWork, bytes: Buffer, timestampMs: number): void {
  if (work.kind === 'hold_leg') {
    const leg = work.leg;
    if ('error' in leg) task.out.deadLetter(leg.error);
    else if (leg.leg === 'hold_credit' || leg.leg === 'hold_post' || leg.leg === 'hold_release') onToLeg(task, leg);
    else if (leg.leg === 'hold_expire') onExpireLeg(task, leg);
    else if (leg.leg !== 'hold_route') onFromLeg(task, leg);
    return;
  }
  const parsed = work.parsed;
  if (parsed.kind === 'dead_letter') task.out.deadLetter(parsed.error);
  else if (parsed.kind === 'route') {
    sendHoldLeg(task, {
      leg: 'hold_route',
      from: parsed.from,
      command: bytes.toString('utf8'),
      timestamp: timestampMs,
    });
  } else if (parsed.kind === 'hold_rejected') {
    const { fields, fingerprint } = parsed;
    if (admitHold(task, work.recordKey, fingerprint, fields)) {
      failHold(task, work.recordKey, fingerprint, fields, parsed.code, parsed.reason);
    }
  } else {
    const command = parsed.command;
    if (!admitHold(task, command.from, command.fingerprint, conflictFields(command))) return;
    if (command.type === 'hold') placeHold(task, command, work.toIsLocal);
    else resolveHold(task, command);
  }
}

/** An idempotency conflict carries the new command's fields, as a transfer's does (the API matches its waiter by them). */
function conflictFields(command: AnyHoldCommand): HoldFields {
  const fields: HoldFields = { transferId: command.transferId, type: command.type };
  if (command.type !== 'hold') fields['holdId'] = command.holdId;
  fields['from'] = command.from;
  if (command.type === 'hold') fields['to'] = command.to;
  if (command.amount !== undefined && command.currency !== undefined) {
    fields['amount'] = formatMoney(command.amount, currencyDigits(command.currency)!);
    fields['currency'] = command.currency;
  }
  if (command.type === 'hold' && command.reference !== undefined) fields['reference'] = command.reference;
  fields['requestedAt'] = command.requestedAt;
  return fields;
}

/**
 * The idempotency gate of processor.ts, for hold commands: true when (account, transferId) is new; an
 * exact duplicate is silent, a conflicting one answered `idempotency_conflict` once (remembered).
 */
function admitHold(task: HoldTask, account: string, fingerprint: string, fields: HoldFields): boolean {
  const transferId = fields['transferId']!;
  const verdict = dedupVerdict(task.stores.transfers, account, transferId, fingerprint);
  if (verdict === 'new') return true;
  if (verdict !== 'duplicate')
    task.out.outcome('failed', { ...fields, code: 'idempotency_conflict', reason: verdict.conflict }, account);
  return false;
}
