// The parsing helpers every setting goes through: a bad value is a ConfigError naming the variable and
// what was expected. Certificate, key and password files are read here, once, at start: a missing or
// unreadable file is a ConfigError naming its variable, not a connection failure later. Secret values
// are held in Secret (printed as "[redacted]") and never echoed in error messages.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Secret } from './secret.ts';

export class ConfigError extends Error {
  readonly code = 'config_invalid';
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

export type Env = Record<string, string | undefined>;

export function str(env: Env, name: string, fallback: string, pattern?: RegExp, expected?: string): string {
  const raw = env[name];
  const value = raw === undefined || raw === '' ? fallback : raw.trim();
  if (pattern && !pattern.test(value)) {
    throw new ConfigError(name, `expected ${expected ?? pattern.source}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) {
    throw new ConfigError(name, `expected an integer between ${min} and ${max}, got ${JSON.stringify(raw)}`);
  }
  const value = Number(raw.trim());
  if (value < min || value > max) {
    throw new ConfigError(name, `expected an integer between ${min} and ${max}, got ${value}`);
  }
  return value;
}

export function brokers(env: Env, name: string, fallback: string): string[] {
  const value = str(env, name, fallback);
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (list.length === 0) throw new ConfigError(name, 'expected a comma-separated list of host:port');
  for (const broker of list) {
    const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(broker);
    if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535) {
      throw new ConfigError(name, `expected host:port, got ${JSON.stringify(broker)}`);
    }
  }
  return list;
}

export function url(env: Env, name: string, fallback: string, protocols: string[]): string {
  const value = str(env, name, fallback);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, `expected a URL (${protocols.join(' or ')}), got an unparseable value`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `expected a ${protocols.join(' or ')} URL, got protocol ${parsed.protocol}`);
  }
  return value;
}

/**
 * A secret from NAME or from the file named by NAME_FILE (one of the two; a final newline in the file is
 * not part of it). Error messages name the variable and the file, never the value.
 */
export function secretSetting(env: Env, name: string, missing: string): Secret {
  const inline = env[name];
  const fileVariable = `${name}_FILE`;
  if (inline && env[fileVariable]) throw new ConfigError(name, `set either ${name} or ${fileVariable}, not both`);
  if (inline) return new Secret(inline);
  const file = optionalFile(env, fileVariable);
  if (!file) throw new ConfigError(name, `${missing} (or ${fileVariable})`);
  const value = file.text.replace(/\r?\n$/, '');
  if (!value) throw new ConfigError(fileVariable, `${file.path} is empty`);
  return new Secret(value);
}

export function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '') return fallback;
  if (raw === 'true' || raw === '1' || raw === 'yes') return true;
  if (raw === 'false' || raw === '0' || raw === 'no') return false;
  throw new ConfigError(name, `expected true or false, got ${JSON.stringify(env[name])}`);
}

export interface SettingFile {
  path: string;
  text: string;
}

/** Reads the file a variable names (relative paths from the working directory); undefined when unset. */
export function optionalFile(env: Env, name: string, label: string = name): SettingFile | undefined {
  const given = env[name]?.trim();
  if (!given) return undefined;
  return readSettingFile(given, label);
}

export function readSettingFile(given: string, label: string): SettingFile {
  const resolved = path.resolve(given);
  try {
    return { path: resolved, text: readFileSync(resolved, 'utf8') };
  } catch (error) {
    throw new ConfigError(label, `cannot read ${resolved} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export function checkCertificates(file: SettingFile, label: string): void {
  if (!file.text.includes('-----BEGIN CERTIFICATE-----'))
    throw new ConfigError(label, `${file.path} holds no PEM certificate`);
  try {
    new X509Certificate(file.text);
  } catch (error) {
    throw new ConfigError(label, `${file.path} is not a valid PEM certificate (${(error as Error).message})`);
  }
}

/** A client certificate and its key: both or neither, the key unencrypted PEM and matching the certificate. */
export function checkKeyPair(
  cert: SettingFile | undefined,
  key: SettingFile | undefined,
  certLabel: string,
  keyLabel: string,
): void {
  if (!cert && !key) return;
  if (!cert) throw new ConfigError(certLabel, `is required with ${keyLabel} (a private key needs its certificate)`);
  if (!key)
    throw new ConfigError(keyLabel, `is required with ${certLabel} (a client certificate needs its private key)`);
  checkCertificates(cert, certLabel);
  let privateKey;
  try {
    privateKey = createPrivateKey(key.text);
  } catch (error) {
    // Node's message names the format problem only; it never contains key material.
    throw new ConfigError(
      keyLabel,
      `${key.path} is not an unencrypted PEM private key (${(error as NodeJS.ErrnoException).code ?? 'invalid'})`,
    );
  }
  if (!new X509Certificate(cert.text).checkPrivateKey(privateKey)) {
    throw new ConfigError(keyLabel, `${key.path} is not the private key of the certificate in ${certLabel}`);
  }
}
