// The MACs of internal records (src/kafka/record-mac.ts) and the engine's policy around them
// (src/runtime/record-auth.ts, src/runtime/internal-records.ts): what verifies, what is refused and why, and key rotation.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clusterKeysFromSecret, type ClusterKeys } from '../../../src/config/cluster-key.ts';
import { loadConfig } from '../../../src/config/config.ts';
import { createLogger } from '../../../src/config/logger.ts';
import { Secret } from '../../../src/config/secret.ts';
import { InternalRecords } from '../../../src/runtime/internal-records.ts';
import { internalRecordsDegradedReasons } from '../../../src/streams/status.ts';
import {
  MAC_HEADER,
  signChangelogEntry,
  signRepartitionRecord,
  verifyChangelogRecord,
  verifyRepartitionRecord,
} from '../../../src/kafka/record-mac.ts';
import { changelogVerifier, UnauthenticatedChangelogRecordError } from '../../../src/runtime/record-auth.ts';
import type { FetchedRecord } from '../../../src/kafka/fetcher.ts';
import { Topology } from '../../../src/topology/topology.ts';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const keys = clusterKeysFromSecret(A);
const log = createLogger('silent');

const leg = (value: string, over: Partial<FetchedRecord> = {}): FetchedRecord => ({
  topic: 'bankstream-credits',
  partition: 3,
  offset: 10n,
  key: Buffer.from('acc-2'),
  value: Buffer.from(value),
  timestamp: 1,
  headers: {},
  ...over,
});

const CREDIT =
  '{"leg":"credit","transferId":"t-1","from":"acc-1","to":"acc-2","amount":"12.50","currency":"EUR","requestedAt":"2026-01-01T00:00:00.000Z"}';

function signed(record: FetchedRecord, k: ClusterKeys = keys, task = 1): FetchedRecord {
  return { ...record, headers: signRepartitionRecord(k, record, task) };
}

/** The key id a packed MAC header names (record-mac.ts: version, id length, id, [task], MAC). */
function keyIdOf(header: Buffer): string {
  return header.subarray(2, 2 + header[1]!).toString('utf8');
}

/** A copy of a leg's MAC header claiming another producing task. */
function withTask(header: Buffer, task: number): Buffer {
  const copy = Buffer.from(header);
  copy.writeUInt32BE(task, 2 + copy[1]!);
  return copy;
}

function headersFromMap(map: Map<Buffer, Buffer>): Record<string, Buffer> {
  return Object.fromEntries([...map].map(([k, v]) => [k.toString('utf8'), v]));
}

describe('repartition record MACs', () => {
  it('should verify a record signed by the engine and name the key and task in headers', () => {
    const record = signed(leg(CREDIT));
    const header = record.headers[MAC_HEADER]!;
    // One packed header: version 1, key id "k1", task 1, then the 32-byte HMAC.
    expect(Object.keys(record.headers)).toEqual([MAC_HEADER]);
    expect([header[0], keyIdOf(header), header.readUInt32BE(4), header.length]).toEqual([1, 'k1', 1, 2 + 2 + 4 + 32]);
    expect(verifyRepartitionRecord(keys, record)).toEqual({ ok: true, previousKey: false, unsigned: false });
  });

  it('should refuse a forged leg with no MAC, even one shaped exactly like a real credit', () => {
    expect(verifyRepartitionRecord(keys, leg(CREDIT))).toEqual({ ok: false, reason: 'missing_mac' });
  });

  it('should refuse a real leg whose amount was edited (a replay of another transfer with another amount)', () => {
    const original = signed(leg(CREDIT));
    const edited = { ...original, value: Buffer.from(CREDIT.replace('"12.50"', '"500.00"')) };
    expect(verifyRepartitionRecord(keys, edited)).toEqual({ ok: false, reason: 'bad_mac' });
  });

  it('should refuse a valid leg moved to another partition, another topic, another key or claiming another task', () => {
    const original = signed(leg(CREDIT));
    expect(verifyRepartitionRecord(keys, { ...original, partition: 4 }).ok).toBe(false);
    expect(verifyRepartitionRecord(keys, { ...original, topic: 'other-credits' }).ok).toBe(false);
    expect(verifyRepartitionRecord(keys, { ...original, key: Buffer.from('acc-3') }).ok).toBe(false);
    expect(
      verifyRepartitionRecord(keys, {
        ...original,
        headers: { [MAC_HEADER]: withTask(original.headers[MAC_HEADER]!, 2) },
      }),
    ).toEqual({ ok: false, reason: 'bad_mac' });
    expect(
      verifyRepartitionRecord(keys, {
        ...original,
        headers: { [MAC_HEADER]: original.headers[MAC_HEADER]!.subarray(0, 39) },
      }),
    ).toEqual({ ok: false, reason: 'malformed_mac' });
    expect(
      verifyRepartitionRecord(keys, { ...original, headers: { ...original.headers, extra: Buffer.from('1') } }).ok,
    ).toBe(false);
  });

  it('should refuse a leg signed with another secret, or naming a key id nobody has', () => {
    const other = signed(leg(CREDIT), clusterKeysFromSecret(B));
    expect(verifyRepartitionRecord(keys, other)).toEqual({ ok: false, reason: 'bad_mac' });
    const unknown = signed(leg(CREDIT), clusterKeysFromSecret(B, 'k9'));
    expect(verifyRepartitionRecord(keys, unknown)).toEqual({ ok: false, reason: 'unknown_key' });
  });

  it('should refuse any single-byte change of the value or key (property)', () => {
    const original = signed(leg(CREDIT));
    fc.assert(
      fc.property(fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 255 }), (inKey, index, delta) => {
        const bytes = Buffer.from(inKey ? original.key! : original.value!);
        const at = index % bytes.length;
        bytes[at] = (bytes[at]! + delta) % 256;
        const changed = inKey ? { ...original, key: bytes } : { ...original, value: bytes };
        return verifyRepartitionRecord(keys, changed).ok === false;
      }),
    );
  });

  it('should accept an unsigned leg only with LEGS_ACCEPT_UNSIGNED, and never a wrong MAC', () => {
    expect(verifyRepartitionRecord(keys, leg(CREDIT), true)).toEqual({ ok: true, previousKey: false, unsigned: true });
    const wrong = signed(leg(CREDIT), clusterKeysFromSecret(B));
    expect(verifyRepartitionRecord(keys, wrong, true)).toEqual({ ok: false, reason: 'bad_mac' });
    const garbled = { ...leg(CREDIT), headers: { [MAC_HEADER]: Buffer.from('1') } };
    expect(verifyRepartitionRecord(keys, garbled, true)).toEqual({ ok: false, reason: 'malformed_mac' });
  });
});

describe('key rotation', () => {
  const old = loadConfig({ CLUSTER_SECRET: A, CLUSTER_SECRET_ID: 'k1' }).clusterKeys!;
  const rotating = loadConfig({
    CLUSTER_SECRET: B,
    CLUSTER_SECRET_ID: 'k2',
    CLUSTER_SECRET_PREVIOUS: A,
    CLUSTER_SECRET_PREVIOUS_ID: 'k1',
  }).clusterKeys!;
  const rotated = loadConfig({ CLUSTER_SECRET: B, CLUSTER_SECRET_ID: 'k2' }).clusterKeys!;

  it('should accept legs signed with the previous key during the rotation and refuse them after it', () => {
    const before = signed(leg(CREDIT), old);
    expect(verifyRepartitionRecord(rotating, before)).toEqual({ ok: true, previousKey: true, unsigned: false });
    expect(verifyRepartitionRecord(rotated, before)).toEqual({ ok: false, reason: 'unknown_key' });
  });

  it('should sign with the new key during the rotation, which instances not yet rotated refuse', () => {
    const during = signed(leg(CREDIT), rotating);
    expect(keyIdOf(during.headers[MAC_HEADER]!)).toBe('k2');
    expect(verifyRepartitionRecord(rotated, during).ok).toBe(true);
    expect(verifyRepartitionRecord(old, during)).toEqual({ ok: false, reason: 'unknown_key' });
  });

  it('should count legs accepted with the previous key and refuse them after the rotation through the engine path', () => {
    const topology = new Topology()
      .addSource('c', { topics: ['bankstream-credits'] })
      .addProcessor('p', () => ({ process() {} }), 'c')
      .addRepartitionTopic('bankstream-credits', { deadLetterTopic: 'dlq' });
    const before = signed(leg(CREDIT), old);
    const during = new InternalRecords({ keys: rotating, topology, log });
    expect(during.authenticate('bankstream-credits', [before], () => 1).accepted).toHaveLength(1);
    expect(during.status().previousKeyAccepted).toBe(1);
    const after = new InternalRecords({ keys: rotated, topology, log });
    const result = after.authenticate('bankstream-credits', [before], () => 1);
    expect(result.accepted).toHaveLength(0);
    expect(result.deadLetters[0]!.headers['bankstream.error']!.toString()).toMatch(/unknown_key/);
  });
});

describe('the engine path (InternalRecords)', () => {
  const topology = new Topology()
    .addSource('c', { topics: ['bankstream-credits'] })
    .addSource('in', { topics: ['input'] })
    .addProcessor('p', () => ({ process() {} }), 'c', 'in')
    .addRepartitionTopic('bankstream-credits', { deadLetterTopic: 'dlq' });

  it('should sign outputs to the repartition topic only, and strip MAC headers before processors see a record', () => {
    const internal = new InternalRecords({ keys, topology, log });
    const out = internal.sign(
      {
        topic: 'bankstream-credits',
        partition: 3,
        key: Buffer.from('acc-2'),
        value: Buffer.from(CREDIT),
        timestamp: 1,
        headers: { trace: Buffer.from('x') },
      },
      1,
    );
    expect(out.headers[MAC_HEADER]).toBeDefined();
    const other = internal.sign(
      { topic: 'completed', partition: 0, key: null, value: null, timestamp: 1, headers: {} },
      1,
    );
    expect(other.headers).toEqual({});
    const { accepted, deadLetters } = internal.authenticate('bankstream-credits', [{ ...out, offset: 5n }], () => 12);
    expect(deadLetters).toEqual([]);
    expect(accepted[0]!.headers).toEqual({ trace: Buffer.from('x') });
  });

  it('should turn a forged record into a dead letter with the original bytes, the reason and the source position', () => {
    const internal = new InternalRecords({ keys, topology, log });
    const forged = leg(CREDIT, { partition: 5, offset: 77n, headers: { h: Buffer.from('v') } });
    const { accepted, deadLetters } = internal.authenticate('bankstream-credits', [forged], () => 3);
    expect(accepted).toEqual([]);
    const letter = deadLetters[0]!;
    expect(letter.topic).toBe('dlq');
    expect(letter.partition).toBe(2);
    expect(letter.value).toEqual(forged.value);
    expect(letter.key).toEqual(forged.key);
    expect(letter.headers['h']).toEqual(Buffer.from('v'));
    expect(letter.headers['bankstream.error']!.toString()).toMatch(/missing_mac/);
    expect(letter.headers['bankstream.source.topic']!.toString()).toBe('bankstream-credits');
    expect(letter.headers['bankstream.source.partition']!.toString()).toBe('5');
    expect(letter.headers['bankstream.source.offset']!.toString()).toBe('77');
    const status = internal.status();
    expect(status.rejectedRecords).toBe(1);
    expect(status.lastRejected).toMatchObject({
      topic: 'bankstream-credits',
      partition: 5,
      offset: '77',
      reason: 'missing_mac',
    });
    expect(internalRecordsDegradedReasons(status)[0]).toMatch(
      /1 internal record\(s\) refused .*bankstream-credits:5:77/,
    );
  });

  it('should pass records of other topics untouched and unchecked', () => {
    const internal = new InternalRecords({ keys, topology, log });
    const command = { ...leg(CREDIT), topic: 'input' };
    expect(internal.authenticate('input', [command], () => 1).accepted[0]).toBe(command);
  });

  it('should report upgrade mode as degraded while an accept-unsigned switch is on', () => {
    const internal = new InternalRecords({ keys, topology, log, auth: { legsAcceptUnsigned: true } });
    expect(internal.authenticate('bankstream-credits', [leg(CREDIT)], () => 1).accepted).toHaveLength(1);
    expect(internal.status().unsignedAccepted).toBe(1);
    expect(internalRecordsDegradedReasons(internal.status())).toEqual([expect.stringMatching(/LEGS_ACCEPT_UNSIGNED/)]);
  });
});

describe('changelog record MACs', () => {
  const key = Buffer.from('acc-1');
  const value = Buffer.from('{"balance":"100","inFlight":"0"}');
  const record = (headers: Record<string, Buffer>, over: Partial<FetchedRecord> = {}): FetchedRecord => ({
    topic: 'bankstream-balances-changelog',
    partition: 2,
    offset: 9n,
    key,
    value,
    timestamp: 1,
    headers,
    ...over,
  });

  it('should verify a changelog record for its store and partition only, tombstones included', () => {
    const headers = headersFromMap(signChangelogEntry(keys, 'balances', 2, key, value));
    expect(verifyChangelogRecord(keys, 'balances', record(headers)).ok).toBe(true);
    expect(verifyChangelogRecord(keys, 'accounts', record(headers)).ok).toBe(false);
    expect(verifyChangelogRecord(keys, 'balances', record(headers, { partition: 3 })).ok).toBe(false);
    expect(
      verifyChangelogRecord(
        keys,
        'balances',
        record(headers, { value: Buffer.from('{"balance":"999999","inFlight":"0"}') }),
      ).ok,
    ).toBe(false);
    const tombstone = headersFromMap(signChangelogEntry(keys, 'balances', 2, key, null));
    expect(verifyChangelogRecord(keys, 'balances', record(tombstone, { value: null })).ok).toBe(true);
    expect(verifyChangelogRecord(keys, 'balances', record(tombstone)).ok).toBe(false);
  });

  it('should stop a restore at a forged record with an error naming topic, partition, offset and the way out', () => {
    const check = changelogVerifier(keys, {}, log);
    let error: unknown;
    try {
      check('balances', record({}));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UnauthenticatedChangelogRecordError);
    expect((error as Error).message).toMatch(
      /bankstream-balances-changelog:2:9 of store balances does not verify \(missing_mac\)/,
    );
    expect((error as Error).message).toMatch(/CHANGELOG_SKIP_RECORDS=bankstream-balances-changelog:2:9/);
    expect((error as { code: string }).code).toBe('changelog_record_unauthenticated');
  });

  it('should skip exactly the records the operator listed, and accept unsigned ones only with CHANGELOG_ACCEPT_UNSIGNED', () => {
    const skip = changelogVerifier(keys, { changelogSkipRecords: new Set(['bankstream-balances-changelog:2:9']) }, log);
    expect(skip('balances', record({}))).toBe('skip');
    expect(() => skip('balances', record({}, { offset: 10n }))).toThrow(UnauthenticatedChangelogRecordError);
    const upgrade = changelogVerifier(keys, { changelogAcceptUnsigned: true }, log);
    expect(upgrade('balances', record({}))).toBe('unsigned');
    const wrong = headersFromMap(signChangelogEntry(clusterKeysFromSecret(B), 'balances', 2, key, value));
    expect(() => upgrade('balances', record(wrong))).toThrow(/bad_mac/);
  });

  it('should parse CHANGELOG_SKIP_RECORDS strictly, naming the variable', () => {
    expect([
      ...loadConfig({ CHANGELOG_SKIP_RECORDS: 'a-changelog:0:5, b:1:0' }).recordAuth.changelogSkipRecords,
    ]).toEqual(['a-changelog:0:5', 'b:1:0']);
    expect(() => loadConfig({ CHANGELOG_SKIP_RECORDS: 'a:0' })).toThrow(/CHANGELOG_SKIP_RECORDS/);
    expect(() => loadConfig({ CHANGELOG_SKIP_RECORDS: 'a:-1:5' })).toThrow(/CHANGELOG_SKIP_RECORDS/);
    expect(() => loadConfig({ CHANGELOG_ACCEPT_UNSIGNED: 'maybe' })).toThrow(/CHANGELOG_ACCEPT_UNSIGNED/);
  });

  it('should never reveal the secret through a key object', () => {
    expect(JSON.stringify(keys)).not.toContain(A);
    expect(new Secret(A).reveal()).toBe(A);
  });
});
