// Reading @platformatic/kafka's errors: a failed request is a tree (MultipleErrors with `errors`, a
// `cause`), and the broker's answer sits somewhere in it as a ProtocolError with its `apiId`. Every
// decision about an error (retry, stop, rejoin) looks through the tree with these two helpers.

/**
 * Depth-first over an error tree as @platformatic/kafka builds it (`errors` arrays and `cause`, at most 8
 * levels): the first value `visit` returns for a node, or undefined.
 */
export function findInErrorTree<T>(
  error: unknown,
  visit: (node: Record<string, unknown>) => T | undefined,
  depth = 0,
): T | undefined {
  if (!error || typeof error !== 'object' || depth > 8) return undefined;
  const node = error as Record<string, unknown>;
  const here = visit(node);
  if (here !== undefined) return here;
  if (Array.isArray(node.errors)) {
    for (const inner of node.errors) {
      const found = findInErrorTree(inner, visit, depth + 1);
      if (found !== undefined) return found;
    }
  }
  return findInErrorTree(node.cause, visit, depth + 1);
}

/** Collects the Kafka protocol error names (apiId) found anywhere in an error tree. */
export function kafkaErrorIds(error: unknown): Set<string> {
  const found = new Set<string>();
  findInErrorTree(error, (node) => {
    if (typeof node.apiId === 'string') found.add(node.apiId);
    return undefined;
  });
  return found;
}

// The error classes every room shares, grouped by what the caller must do (runtime/errors.ts adds the
// engine's own: task migrated, task corrupted).
export class StreamsError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StreamsError';
    this.code = code;
  }
}

/** The instance must stop: fenced by a newer instance with the same transactional id, or misconfigured topics. */
export class FatalStreamsError extends StreamsError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'FatalStreamsError';
  }
}

const FENCED = new Set([
  'PRODUCER_FENCED',
  'INVALID_PRODUCER_EPOCH',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'INVALID_PRODUCER_ID_MAPPING',
]);

export function isFencedError(error: unknown): boolean {
  for (const id of kafkaErrorIds(error)) if (FENCED.has(id)) return true;
  return hasFlag(error, 'producerFenced');
}

/** True when some error in the tree carries `flag: true` (@platformatic/kafka marks fencing so). */
function hasFlag(error: unknown, flag: string): boolean {
  return findInErrorTree(error, (node) => (node[flag] === true ? true : undefined)) ?? false;
}
