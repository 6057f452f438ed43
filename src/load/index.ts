export { runLoad } from './run-load.ts';
export { LOAD_DEFAULTS, LOAD_LIMITS, parseDuration, parseSkew, resolveLoadOptions } from './options.ts';
export { LoadError, LoadOptionsError } from './errors.ts';
export { INVALID_KINDS, Workload, formatMinor, type LoadMessage } from './workload.ts';
export { accountPicker, seededRandom, type Skew } from './random.ts';
export type { CommandKind, Expectation, LoadOptions, LoadProgress, LoadResult, SentCommand } from './types.ts';
