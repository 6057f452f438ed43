// The connection security of every Kafka client, built in one place from the configuration
// (KAFKA_SECURITY_PROTOCOL, KAFKA_SSL_*, KAFKA_SASL_*; parsed and checked in src/config/config.ts):
//
//   kafkaConnectionOptions    @platformatic/kafka `tls` / `tlsServerName` / `sasl` (engine, sink, admin)
//   kafkajsConnectionOptions  KafkaJS `ssl` / `sasl` (load generator, upstream producers in tests)
//   explainKafkaError         turns a failed connection or a refused request into one sentence that
//                             names the setting to check (wrong password, untrusted certificate, ACLs)
//
// The SASL password is handed to @platformatic/kafka as a provider function, so an options object that
// ends up in a log shows no password; KafkaJS only takes a string.
import { isIP } from 'node:net';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { SASLOptions } from '@platformatic/kafka';
import type { KafkaConfig as KafkaJsConfig, SASLOptions as KafkaJsSaslOptions } from 'kafkajs';
import type { KafkaSecurityConfig, KafkaSecurityProtocol, KafkaTlsConfig } from '../config/config.ts';
import type { KafkaSecurityOptions } from './clients.ts';

/**
 * The @platformatic/kafka connection options. `brokers` decides SNI: with host names (managed
 * clusters route by SNI) every connection sends its broker's host name; with IP addresses none is
 * sent, as RFC 6066 forbids IP addresses there.
 */
export function kafkaConnectionOptions(
  security: KafkaSecurityConfig,
  brokers: readonly string[],
): KafkaSecurityOptions {
  const options: KafkaSecurityOptions = {};
  if (security.tls) {
    options.tls = tlsOptions(security.tls);
    if (brokers.some((broker) => isIP(hostOf(broker)) === 0)) options.tlsServerName = true;
  }
  if (security.sasl) {
    const { mechanism, username, password } = security.sasl;
    const sasl: SASLOptions = { mechanism, username, password: () => password.reveal() };
    options.sasl = sasl;
  }
  return options;
}

/** The same settings in KafkaJS' shape (`ssl`, `sasl`), for KafkaJS-based producers. */
export function kafkajsConnectionOptions(security: KafkaSecurityConfig): Pick<KafkaJsConfig, 'ssl' | 'sasl'> {
  const options: Pick<KafkaJsConfig, 'ssl' | 'sasl'> = {};
  if (security.tls) options.ssl = tlsOptions(security.tls);
  if (security.sasl) {
    const { username } = security.sasl;
    const password = security.sasl.password.reveal();
    const byMechanism: Record<typeof security.sasl.mechanism, KafkaJsSaslOptions> = {
      PLAIN: { mechanism: 'plain', username, password },
      'SCRAM-SHA-256': { mechanism: 'scram-sha-256', username, password },
      'SCRAM-SHA-512': { mechanism: 'scram-sha-512', username, password },
    };
    options.sasl = byMechanism[security.sasl.mechanism];
  }
  return options;
}

/** Node TLS options: chain verification and host name check on unless turned off explicitly. */
export function tlsOptions(tls: KafkaTlsConfig): TlsConnectionOptions {
  const options: TlsConnectionOptions = { rejectUnauthorized: tls.rejectUnauthorized, minVersion: 'TLSv1.2' };
  if (tls.ca !== undefined) options.ca = tls.ca;
  if (tls.cert !== undefined) options.cert = tls.cert;
  if (tls.key !== undefined) options.key = tls.key.reveal();
  // The chain is still verified; only the match between the broker's name and its certificate is skipped.
  if (!tls.verifyHostname) options.checkServerIdentity = () => undefined;
  return options;
}

function hostOf(broker: string): string {
  const bracketed = /^\[([^\]]+)\]:\d+$/.exec(broker);
  if (bracketed) return bracketed[1]!;
  const colon = broker.lastIndexOf(':');
  return colon < 0 ? broker : broker.slice(0, colon);
}

/** A Kafka connection or authorization failure, explained; `cause` holds the client's error. */
export class KafkaAccessError extends Error {
  readonly code: 'kafka_connection_failed' | 'kafka_not_authorized';
  /**
   * True when the explanation is a guess from a bare "Connection closed": that is also what a broker going
   * down looks like, so a running instance waits (src/kafka/retry.ts) and logs this message as a hint.
   */
  readonly mayHeal: boolean;
  constructor(code: KafkaAccessError['code'], message: string, options: { cause: unknown; mayHeal?: boolean }) {
    super(message, { cause: options.cause });
    this.name = 'KafkaAccessError';
    this.code = code;
    this.mayHeal = options.mayHeal ?? false;
  }
}

// Node's certificate verification failures (X509_V_ERR_* as OpenSSL names them).
const UNTRUSTED_CERTIFICATE_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'INVALID_CA',
]);

const AUTHORIZATION_CODES = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
]);

/** What an explanation needs to know of the client's security, from either form of it. */
interface SecuritySummary {
  protocol: KafkaSecurityProtocol;
  mechanism: string | undefined;
  username: string | undefined;
  caGiven: boolean;
  certGiven: boolean;
}

function summarize(security: KafkaSecurityConfig | KafkaSecurityOptions | undefined): SecuritySummary {
  if (security && 'protocol' in security) {
    const { tls, sasl } = security;
    return {
      protocol: security.protocol,
      mechanism: sasl?.mechanism,
      username: sasl?.username,
      caGiven: tls?.ca !== undefined,
      certGiven: tls?.cert !== undefined,
    };
  }
  const tls = security?.tls !== undefined;
  const sasl = security?.sasl;
  const protocol: KafkaSecurityProtocol = sasl ? (tls ? 'SASL_SSL' : 'SASL_PLAINTEXT') : tls ? 'SSL' : 'PLAINTEXT';
  return {
    protocol,
    mechanism: sasl?.mechanism,
    username: typeof sasl?.username === 'string' ? sasl.username : undefined,
    caGiven: security?.tls?.ca !== undefined,
    certGiven: security?.tls?.cert !== undefined,
  };
}

interface ErrorFacts {
  code?: string;
  apiId?: string;
  message: string;
}

/**
 * When `error` (anywhere in its `errors` / `cause` tree) is a security failure, a KafkaAccessError
 * whose message says what failed and which setting to check; otherwise undefined. Messages name
 * settings, never their values.
 */
export function explainKafkaError(
  error: unknown,
  given?: KafkaSecurityConfig | KafkaSecurityOptions,
): KafkaAccessError | undefined {
  const security = summarize(given);
  const facts = flatten(error);
  const broker = facts
    .map((fact) => /Connection to (\S+) failed/.exec(fact.message)?.[1])
    .find((address) => address !== undefined);
  const at = broker ? ` (${broker})` : '';
  const connectionFailed = (message: string, mayHeal = false) =>
    new KafkaAccessError('kafka_connection_failed', message, { cause: error, mayHeal });
  const has = (predicate: (fact: ErrorFacts) => boolean) => facts.find(predicate);

  if (has((fact) => fact.apiId === 'SASL_AUTHENTICATION_FAILED')) {
    const mechanism = security.mechanism ?? 'the configured mechanism';
    return connectionFailed(
      `SASL authentication failed${at}: the broker refused KAFKA_SASL_USERNAME with KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE) for ${mechanism}`,
    );
  }
  if (has((fact) => fact.apiId === 'UNSUPPORTED_SASL_MECHANISM')) {
    return connectionFailed(
      `the broker's listener does not enable KAFKA_SASL_MECHANISM=${security.mechanism ?? '(unset)'}${at}`,
    );
  }
  const untrusted = has((fact) => fact.code !== undefined && UNTRUSTED_CERTIFICATE_CODES.has(fact.code));
  if (untrusted) {
    const trust = !security.caGiven
      ? 'KAFKA_SSL_CA_FILE is not set, so only public CAs are trusted'
      : 'KAFKA_SSL_CA_FILE must hold the CA that signed it';
    return connectionFailed(
      `the broker's TLS certificate is not trusted${at}: ${untrusted.code} (${untrusted.message}); ${trust}`,
    );
  }
  const mismatch = has((fact) => fact.code === 'ERR_TLS_CERT_ALTNAME_INVALID');
  if (mismatch) {
    return connectionFailed(
      `the broker's TLS certificate does not match its address${at}: ${mismatch.message}; connect by a name the certificate lists (KAFKA_BROKERS and the advertised listeners) or set KAFKA_SSL_VERIFY_HOSTNAME=false`,
    );
  }
  if (
    has(
      (fact) =>
        /TLS handshake failed|wrong version number|packet length too long|unexpected eof while reading/i.test(
          fact.message,
        ) || fact.code === 'EPROTO',
    )
  ) {
    return connectionFailed(
      `the TLS handshake failed${at}: check that the broker's listener speaks TLS (KAFKA_SECURITY_PROTOCOL=${security.protocol})`,
    );
  }
  if (has((fact) => /Cannot find a suitable SASL mechanism/.test(fact.message))) {
    return connectionFailed(
      `the broker closed the connection during the SASL handshake${at}: check KAFKA_SECURITY_PROTOCOL=${security.protocol} (the listener may need TLS) and KAFKA_SASL_MECHANISM`,
    );
  }
  const denied = has((fact) => fact.apiId !== undefined && AUTHORIZATION_CODES.has(fact.apiId));
  if (denied) {
    const who = security.username === undefined ? 'this client' : `KAFKA_SASL_USERNAME=${security.username}`;
    return new KafkaAccessError(
      'kafka_not_authorized',
      `the broker refused ${who}: ${denied.apiId}; grant the ACLs of its role (docs/security.md, \`bankstream acls print\`)`,
      { cause: error },
    );
  }
  if (has((fact) => fact.message === 'Broker requires TLS.')) {
    return connectionFailed(
      `the broker's listener requires TLS${at}: set KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL (it is ${security.protocol})`,
    );
  }
  // A listener that wants more than the client offers closes the connection without a word. At start,
  // that is the likely reason; later it may as well be a broker going down, so the wording says "may".
  if (has((fact) => fact.message === 'Connection closed')) {
    if (security.protocol === 'PLAINTEXT') {
      return connectionFailed(
        `the broker closed the connection${at}: if its listener needs TLS or SASL, set KAFKA_SECURITY_PROTOCOL`,
        true,
      );
    }
    if (security.protocol === 'SSL' && !security.certGiven) {
      return connectionFailed(
        `the broker closed the connection after the TLS handshake${at}: its listener may require a client certificate (KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE) or SASL (KAFKA_SECURITY_PROTOCOL=SASL_SSL)`,
        true,
      );
    }
  }
  return undefined;
}

/** Every error in the tree below `error` (itself, `errors[]`, `cause`), bounded against cycles. */
function flatten(error: unknown): ErrorFacts[] {
  const out: ErrorFacts[] = [];
  const seen = new Set<unknown>();
  const queue: unknown[] = [error];
  while (queue.length > 0 && out.length < 100) {
    const next = queue.shift();
    if (typeof next !== 'object' || next === null || seen.has(next)) continue;
    seen.add(next);
    const fields = next as { code?: unknown; apiId?: unknown; message?: unknown; errors?: unknown; cause?: unknown };
    out.push({
      ...(typeof fields.code === 'string' ? { code: fields.code } : {}),
      ...(typeof fields.apiId === 'string' ? { apiId: fields.apiId } : {}),
      message: typeof fields.message === 'string' ? fields.message : '',
    });
    if (Array.isArray(fields.errors)) queue.push(...(fields.errors as unknown[]));
    if (fields.cause !== undefined) queue.push(fields.cause);
  }
  return out;
}
