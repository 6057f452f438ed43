// A mixed, reproducible command workload for the bank pipeline tests, with what each command must yield.
// Transfers between funded EUR accounts may complete or fail with insufficient_funds depending on the
// interleaving of partitions; every other command has exactly one possible answer.

export type Expectation =
  | { kind: 'outcome'; transferId: string; codes: Array<'completed' | string> }
  | { kind: 'silent'; transferId: string }
  | { kind: 'conflict'; transferId: string }
  | { kind: 'dlq'; marker: string }
  | { kind: 'audit'; accountId: string; event: string };

export interface WorkloadCommand {
  key: string | null;
  value: Buffer;
  /** Produce to this partition instead of the key's (re-routing tests). */
  partition?: number;
  expect: Expectation;
}

export interface Workload {
  accounts: string[];
  setup: WorkloadCommand[];
  commands: WorkloadCommand[];
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** A small deterministic PRNG (mulberry32) so a failing run can be replayed. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function buildWorkload(options: {
  accounts: number;
  transfers: number;
  seed: number;
  prefix: string;
}): Workload {
  const rnd = random(options.seed);
  const pick = <T>(list: T[]): T => list[Math.floor(rnd() * list.length)]!;
  const eur = Array.from({ length: options.accounts }, (_, i) => `${options.prefix}-acc-${i}`);
  const usd = `${options.prefix}-usd-0`;
  const setup: WorkloadCommand[] = [];
  for (const id of [...eur, usd]) {
    const currency = id === usd ? 'USD' : 'EUR';
    setup.push({
      key: id,
      value: json({ type: 'open_account', accountId: id, ownerId: `owner-${id}`, currency }),
      expect: { kind: 'audit', accountId: id, event: 'account_opened' },
    });
  }
  for (const id of eur) {
    const transferId = `${options.prefix}-dep-${id}`;
    setup.push({
      key: id,
      value: json({ type: 'deposit', transferId, accountId: id, amount: '1000.00', currency: 'EUR' }),
      expect: { kind: 'outcome', transferId, codes: ['completed'] },
    });
  }
  const commands: WorkloadCommand[] = [];
  const sent: Array<{ transferId: string; value: Record<string, unknown>; key: string }> = [];
  for (let i = 0; i < options.transfers; i++) {
    const transferId = `${options.prefix}-t-${i}`;
    const roll = rnd();
    const from = pick(eur);
    let to = pick(eur);
    if (to === from) to = eur[(eur.indexOf(from) + 1) % eur.length]!;
    const amount = `${1 + Math.floor(rnd() * 40)}.${String(Math.floor(rnd() * 100)).padStart(2, '0')}`;
    const base = { type: 'transfer', transferId, from, to, amount, currency: 'EUR' };
    let cmd: WorkloadCommand;
    if (roll < 0.8)
      cmd = {
        key: from,
        value: json(base),
        expect: { kind: 'outcome', transferId, codes: ['completed', 'insufficient_funds'] },
      };
    else if (roll < 0.83)
      cmd = {
        key: from,
        value: json({ ...base, to: `${options.prefix}-nobody` }),
        expect: { kind: 'outcome', transferId, codes: ['account_not_found', 'insufficient_funds'] },
      };
    else if (roll < 0.86)
      cmd = {
        key: from,
        value: json({ ...base, to: usd }),
        expect: { kind: 'outcome', transferId, codes: ['currency_mismatch', 'insufficient_funds'] },
      };
    else if (roll < 0.88)
      cmd = {
        key: from,
        value: json({ ...base, to: from }),
        expect: { kind: 'outcome', transferId, codes: ['same_account'] },
      };
    else if (roll < 0.9)
      cmd = {
        key: from,
        value: json({ ...base, amount: '0.00' }),
        expect: { kind: 'outcome', transferId, codes: ['invalid_amount'] },
      };
    else if (roll < 0.92)
      cmd = {
        key: from,
        value: json({ ...base, amount: 12.5 }),
        expect: { kind: 'outcome', transferId, codes: ['malformed'] },
      };
    else if (roll < 0.93)
      cmd = {
        key: from,
        value: json({ ...base, amount: '1.001' }),
        expect: { kind: 'outcome', transferId, codes: ['invalid_amount'] },
      };
    else if (roll < 0.94)
      cmd = { key: null, value: json(base), expect: { kind: 'outcome', transferId, codes: ['malformed'] } };
    else if (roll < 0.95)
      cmd = { key: from, value: Buffer.from(`{not json ${transferId}`), expect: { kind: 'dlq', marker: transferId } };
    else if (roll < 0.96)
      cmd = { key: from, value: json({ type: 'teleport', transferId }), expect: { kind: 'dlq', marker: transferId } };
    else if (roll < 0.98 && sent.length > 0) {
      const earlier = pick(sent);
      cmd = {
        key: earlier.key,
        value: json(earlier.value),
        expect: { kind: 'silent', transferId: earlier.transferId },
      };
      commands.push(cmd);
      continue;
    } else if (sent.length > 0) {
      const earlier = pick(sent);
      // A unique amount per conflict: a repeated conflicting command would be (rightly) silent.
      cmd = {
        key: earlier.key,
        value: json({ ...earlier.value, amount: `${900000 + i}.00` }),
        expect: { kind: 'conflict', transferId: earlier.transferId },
      };
      commands.push(cmd);
      continue;
    } else
      cmd = {
        key: from,
        value: json(base),
        expect: { kind: 'outcome', transferId, codes: ['completed', 'insufficient_funds'] },
      };
    if (cmd.expect.kind === 'outcome' && cmd.key !== null)
      sent.push({ transferId, value: JSON.parse(cmd.value.toString()) as Record<string, unknown>, key: cmd.key });
    commands.push(cmd);
  }
  return { accounts: [...eur, usd], setup, commands };
}
