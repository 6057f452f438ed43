// Throwaway PEM files for the configuration tests, made with openssl in a temporary folder.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TlsFixtures {
  dir: string;
  ca: string;
  cert: string;
  key: string;
  otherKey: string;
  encryptedKey: string;
  notPem: string;
  empty: string;
  remove(): void;
}

export function createTlsFixtures(): TlsFixtures {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bankstream-tls-unit-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-subj',
    '/CN=unit CA',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'client.key',
    '-out',
    'client.csr',
    '-subj',
    '/CN=unit client',
  );
  openssl(
    'x509',
    '-req',
    '-days',
    '1',
    '-in',
    'client.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'client.pem',
  );
  openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'other.key');
  openssl('pkey', '-in', 'client.key', '-aes256', '-passout', 'pass:secret', '-out', 'encrypted.key');
  writeFileSync(path.join(dir, 'not.pem'), 'hello\n');
  writeFileSync(path.join(dir, 'empty.txt'), '\n');
  const file = (name: string) => path.join(dir, name);
  return {
    dir,
    ca: file('ca.pem'),
    cert: file('client.pem'),
    key: file('client.key'),
    otherKey: file('other.key'),
    encryptedKey: file('encrypted.key'),
    notPem: file('not.pem'),
    empty: file('empty.txt'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
