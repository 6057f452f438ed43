import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/config.ts';
import { parseResetTarget } from '../../../src/ops/offsets.ts';
import {
  decideStart,
  type OffsetResetPolicy,
  outOfRangeStop,
  type StartInput,
} from '../../../src/kafka/offset-reset.ts';

const base = (over: Partial<StartInput>): StartInput => ({
  policy: 'safe',
  group: 'processor',
  partition: 3,
  committed: new Map(),
  earliest: new Map([
    ['in', 40n],
    ['credits', 0n],
  ]),
  topics: ['in', 'credits'],
  hasState: false,
  stateDescription: 'the stores hold data',
  ...over,
});

describe('decideStart', () => {
  it('should start at the log start, not at 0, when a brand-new task has no offsets and no state', () => {
    expect(decideStart(base({}))).toEqual({
      ok: true,
      positions: new Map([
        ['in', 40n],
        ['credits', 0n],
      ]),
    });
  });

  it('should refuse and name each topic-partition and the reset command when a task has state but a missing offset', () => {
    const decision = decideStart(base({ hasState: true, committed: new Map([['in', 7n]]) }));
    expect(decision.ok).toBe(false);
    if (decision.ok) return;
    expect(decision.stops).toEqual([
      expect.objectContaining({ topic: 'credits', partition: 3, code: 'offsets_missing' }),
    ]);
    expect(decision.stops[0]!.reason).toContain('credits-3');
    expect(decision.stops[0]!.action).toContain(
      'bankstream offsets reset --group processor --topic credits --partition 3',
    );
  });

  it('should use the committed offsets whatever the state when every topic has one', () => {
    expect(
      decideStart(
        base({
          hasState: true,
          committed: new Map([
            ['in', 7n],
            ['credits', 0n],
          ]),
        }),
      ),
    ).toEqual({
      ok: true,
      positions: new Map([
        ['in', 7n],
        ['credits', 0n],
      ]),
    });
  });

  it('should refuse even a new task when the policy is none, and start a task with state when it is earliest', () => {
    expect(decideStart(base({ policy: 'none' })).ok).toBe(false);
    expect(decideStart(base({ policy: 'earliest', hasState: true }))).toEqual({
      ok: true,
      positions: new Map([
        ['in', 40n],
        ['credits', 0n],
      ]),
    });
  });

  it('should never start from a position other than a committed offset or the log start when inputs are arbitrary', () => {
    const offset = fc.bigInt({ min: -1n, max: 1000n });
    fc.assert(
      fc.property(
        fc.constantFrom<OffsetResetPolicy>('safe', 'earliest', 'none'),
        fc.boolean(),
        offset,
        offset,
        fc.bigInt({ min: 0n, max: 1000n }),
        (policy, hasState, a, b, start) => {
          const committed = new Map([
            ['in', a],
            ['credits', b],
          ]);
          const decision = decideStart(
            base({
              policy,
              hasState,
              committed,
              earliest: new Map([
                ['in', start],
                ['credits', start],
              ]),
            }),
          );
          const anyMissing = a < 0n || b < 0n;
          const refused = anyMissing && (policy === 'none' || (policy === 'safe' && hasState));
          expect(decision.ok).toBe(!refused);
          if (!decision.ok) return;
          for (const [topic, position] of decision.positions)
            expect(position).toBe((committed.get(topic) ?? -1n) >= 0n ? committed.get(topic) : start);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('outOfRangeStop', () => {
  it('should say records were deleted and point to earliest when the position is before the log start', () => {
    const stop = outOfRangeStop('sink', 'audit_log', 2, 5n, 9n, 12n);
    expect(stop).toMatchObject({ topic: 'audit_log', partition: 2, code: 'offset_out_of_range' });
    expect(stop.reason).toContain('offsets 9 to 12');
    expect(stop.reason).toContain('deleted');
    expect(stop.action).toContain('--group sink --topic audit_log --partition 2 --to earliest');
  });

  it('should say the topic was recreated when the position is past the log end', () => {
    expect(outOfRangeStop('processor', 'in', 0, 50n, 0n, 3n).reason).toContain('past the log end');
  });
});

describe('OFFSET_RESET and --to', () => {
  it('should default OFFSET_RESET to safe, take safe, earliest and none, and refuse anything else naming the variable', () => {
    expect(loadConfig({}).offsetReset).toBe('safe');
    for (const policy of ['safe', 'earliest', 'none'] as const)
      expect(loadConfig({ OFFSET_RESET: policy }).offsetReset).toBe(policy);
    for (const bad of ['latest', 'EARLIEST', 'auto', 'earliest,none']) {
      let error: unknown;
      try {
        loadConfig({ OFFSET_RESET: bad });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).variable).toBe('OFFSET_RESET');
    }
  });

  it('should parse earliest, latest and non-negative 64-bit offsets and nothing else', () => {
    expect(parseResetTarget('earliest')).toBe('earliest');
    expect(parseResetTarget('latest')).toBe('latest');
    expect(parseResetTarget('42')).toBe(42n);
    expect(parseResetTarget('9223372036854775807')).toBe(2n ** 63n - 1n);
    for (const bad of ['-1', '9223372036854775808', '1e3', ' 1', '', 'Latest', '0x10'])
      expect(parseResetTarget(bad), bad).toBeUndefined();
  });
});
