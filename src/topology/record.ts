import type { Headers, Rec } from './types.ts';

const EMPTY: Headers = Object.freeze({});

export function record<K, V>(key: K, value: V, timestamp: number, headers: Headers = EMPTY): Rec<K, V> {
  return Object.freeze({ key, value, timestamp, headers });
}

export function withKey<K, V, K2>(r: Rec<K, V>, key: K2): Rec<K2, V> {
  return record(key, r.value, r.timestamp, r.headers);
}

export function withValue<K, V, V2>(r: Rec<K, V>, value: V2): Rec<K, V2> {
  return record(r.key, value, r.timestamp, r.headers);
}

export function withTimestamp<K, V>(r: Rec<K, V>, timestamp: number): Rec<K, V> {
  return record(r.key, r.value, timestamp, r.headers);
}

export function withHeaders<K, V>(r: Rec<K, V>, headers: Headers): Rec<K, V> {
  return record(r.key, r.value, r.timestamp, Object.freeze({ ...headers }));
}
