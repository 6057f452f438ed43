// The MAC path of internal records alone, in one process, for one or more source trees (`--roots a,b`:
// a checkout of another commit): CPU time of what the engine adds per bench transfer (one that crosses
// tasks: a command, a credit and a settle leg) — both legs signed (InternalRecords.sign) and verified
// (authenticate, MAC header stripped), and its changelog records signed. Free of the broker and of the
// other work on a shared machine, which make engine.perf.ts's A/B noisy; it measures only the MACs.
//
//   node bench/record-mac.perf.ts --roots .:nomac,/tmp/base,. --transfers 100000   (":nomac": MACs off, the loop's own cost)
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';

const { values } = parseArgs({
  options: {
    roots: { type: 'string', default: '.' },
    transfers: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '3' },
  },
});

const CREDITS = 'bankstream-credits';
const credit = (i: number) =>
  Buffer.from(
    `{"leg":"credit","transferId":"t-${i}","from":"acc-${i % 2000}","to":"acc-${(i * 7) % 2000}","amount":"12.50","currency":"EUR","requestedAt":"2026-01-01T00:00:00.000Z"}`,
  );
const settle = (i: number) => Buffer.from(`{"leg":"settle","transferId":"t-${i}","from":"acc-${i % 2000}"}`);
const balance = Buffer.from('{"balance":"125000","inFlight":"1250"}');
const dedup = Buffer.from(
  '{"fingerprint":"0f3c9a1d2b4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8","status":"completed","decidedAt":1767225600000}',
);
// Changelog records of one cross-task transfer, before the write cache merges any: debit (balance,
// dedup entry), credit (balance, credited mark), settle (balance, dedup entry).
const CHANGELOG = [
  ['balances', balance],
  ['transfers', dedup],
  ['balances', balance],
  ['transfers', dedup],
  ['balances', balance],
  ['transfers', dedup],
] as const;

async function measure(rootSpec: string, transfers: number): Promise<number> {
  // "<root>:nomac": the same loop with the MACs off (the harness's own cost, to subtract).
  const nomac = rootSpec.endsWith(':nomac');
  const root = nomac ? rootSpec.slice(0, -':nomac'.length) : rootSpec;
  const { InternalRecords } = (await import(
    path.join(root, 'src/runtime/internal-records.ts')
  )) as typeof import('../src/runtime/internal-records.ts');
  const { clusterKeysFromSecret } = (await import(
    path.join(root, 'src/config/cluster-key.ts')
  )) as typeof import('../src/config/cluster-key.ts');
  const { Topology } = (await import(
    path.join(root, 'src/topology/topology.ts')
  )) as typeof import('../src/topology/topology.ts');
  const topology = new Topology()
    .addSource('c', { topics: [CREDITS] })
    .addProcessor('p', () => ({ process() {} }), 'c')
    .addRepartitionTopic(CREDITS, { deadLetterTopic: 'dlq' });
  const internal = new InternalRecords({
    keys: clusterKeysFromSecret('s'.repeat(40)),
    topology,
    log: pino({ level: 'silent' }),
    enabled: !nomac,
  });
  const started = process.cpuUsage();
  let refused = 0;
  for (let i = 0; i < transfers; i++) {
    const key = Buffer.from(`acc-${i % 2000}`);
    for (const value of [credit(i), settle(i)]) {
      const out = internal.sign(
        { topic: CREDITS, partition: i % 12, key, value, timestamp: 0, headers: {} },
        (i + 5) % 12,
      );
      // As fetched: the client hands header names over as text.
      const fetched = { ...out, offset: BigInt(i), headers: Object.fromEntries(Object.entries(out.headers)) };
      refused += internal.authenticate(CREDITS, [fetched], () => 12).deadLetters.length;
    }
    for (const [store, value] of CHANGELOG) internal.changelogHeaders(store, i % 12, key, value);
  }
  const used = process.cpuUsage(started);
  if (refused > 0) throw new Error(`${refused} records did not verify`);
  return (used.user + used.system) / transfers;
}

const roots = values.roots
  .split(',')
  .map((r) => (r.endsWith(':nomac') ? `${path.resolve(r.slice(0, -':nomac'.length))}:nomac` : path.resolve(r)));
const transfers = Number(values.transfers);
const results = new Map<string, number[]>(roots.map((r) => [r, []]));
for (let round = 0; round < Number(values.rounds); round++) {
  for (const root of round % 2 === 0 ? roots : [...roots].reverse()) {
    const micros = await measure(root, transfers);
    results.get(root)!.push(micros);
    console.log(
      `round ${round} ${root}: ${micros.toFixed(2)} µs CPU per transfer (${(micros / 3).toFixed(2)} per input record)`,
    );
  }
}
for (const [root, list] of results) {
  const sorted = [...list].sort((a, b) => a - b);
  console.log(
    `${root}: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)} µs per transfer, ${(sorted[Math.floor(sorted.length / 2)]! / 3).toFixed(2)} per input record`,
  );
}
