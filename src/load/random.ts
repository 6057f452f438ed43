// Seeded randomness for the load generator: one seed gives the same workload shape every run.

/** A uniform random number in [0, 1). */
export type Random = () => number;

/** sfc32 seeded through splitmix32: fast, 128 bits of state, good enough for load shapes (not for secrets). */
export function seededRandom(seed: number): Random {
  let s = seed >>> 0;
  const next32 = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = next32();
  let b = next32();
  let c = next32();
  let d = next32();
  return () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
}

/** An integer in [0, n). */
export function randomIndex(random: Random, n: number): number {
  return Math.floor(random() * n);
}

/** How accounts are chosen: every account equally likely, or Zipf-skewed (rank k has weight 1 / k^exponent). */
export type Skew = { kind: 'uniform' } | { kind: 'zipf'; exponent: number };

/** Picks account indexes in [0, n) with the given skew; Zipf through an inverse-CDF table and binary search. */
export function accountPicker(random: Random, n: number, skew: Skew): () => number {
  if (skew.kind === 'uniform') return () => randomIndex(random, n);
  const cdf = zipfCdf(n, skew.exponent);
  return () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** Cumulative Zipf distribution over ranks 1..n, normalized so the last entry is exactly 1. */
export function zipfCdf(n: number, exponent: number): Float64Array {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) {
    sum += 1 / Math.pow(k + 1, exponent);
    cdf[k] = sum;
  }
  for (let k = 0; k < n; k++) cdf[k] = cdf[k]! / sum;
  cdf[n - 1] = 1;
  return cdf;
}
