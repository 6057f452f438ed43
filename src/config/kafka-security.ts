// Connection security of Kafka: KAFKA_SECURITY_PROTOCOL with its TLS (KAFKA_SSL_*) and SASL
// (KAFKA_SASL_*) settings, files read and checked at start (see settings.ts).
import { Secret } from './secret.ts';
import {
  ConfigError,
  type Env,
  bool,
  checkCertificates,
  checkKeyPair,
  optionalFile,
  secretSetting,
} from './settings.ts';

export type KafkaSecurityProtocol = 'PLAINTEXT' | 'SSL' | 'SASL_PLAINTEXT' | 'SASL_SSL';
export type KafkaSaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

export interface KafkaTlsConfig {
  /** PEM CA certificates to trust (KAFKA_SSL_CA_FILE); undefined = Node's bundled public CAs. */
  ca: string | undefined;
  /** PEM client certificate (KAFKA_SSL_CERT_FILE) and its private key (KAFKA_SSL_KEY_FILE): both or neither. */
  cert: string | undefined;
  key: Secret | undefined;
  /** Verify the broker's certificate chain (KAFKA_SSL_REJECT_UNAUTHORIZED, default true). */
  rejectUnauthorized: boolean;
  /** Match the broker's host name against its certificate (KAFKA_SSL_VERIFY_HOSTNAME, default true). */
  verifyHostname: boolean;
}

export interface KafkaSaslConfig {
  mechanism: KafkaSaslMechanism;
  username: string;
  /** KAFKA_SASL_PASSWORD, or the content of KAFKA_SASL_PASSWORD_FILE without its final newline. */
  password: Secret;
}

export interface KafkaSecurityConfig {
  protocol: KafkaSecurityProtocol;
  tls: KafkaTlsConfig | undefined;
  sasl: KafkaSaslConfig | undefined;
}

export const KAFKA_SECURITY_PROTOCOLS: readonly KafkaSecurityProtocol[] = [
  'PLAINTEXT',
  'SSL',
  'SASL_PLAINTEXT',
  'SASL_SSL',
];
export const KAFKA_SASL_MECHANISMS: readonly KafkaSaslMechanism[] = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];
const KAFKA_TLS_VARIABLES = [
  'KAFKA_SSL_CA_FILE',
  'KAFKA_SSL_CERT_FILE',
  'KAFKA_SSL_KEY_FILE',
  'KAFKA_SSL_REJECT_UNAUTHORIZED',
  'KAFKA_SSL_VERIFY_HOSTNAME',
];
const KAFKA_SASL_VARIABLES = [
  'KAFKA_SASL_MECHANISM',
  'KAFKA_SASL_USERNAME',
  'KAFKA_SASL_PASSWORD',
  'KAFKA_SASL_PASSWORD_FILE',
];

/** KAFKA_SECURITY_PROTOCOL with its KAFKA_SSL_* and KAFKA_SASL_* settings, files read and checked. */
export function kafkaSecurityConfig(env: Env): KafkaSecurityConfig {
  const given = (env['KAFKA_SECURITY_PROTOCOL'] ?? '').trim().toUpperCase() || 'PLAINTEXT';
  const protocol = KAFKA_SECURITY_PROTOCOLS.find((candidate) => candidate === given);
  if (!protocol) {
    throw new ConfigError(
      'KAFKA_SECURITY_PROTOCOL',
      `expected ${KAFKA_SECURITY_PROTOCOLS.join(', ')}, got ${JSON.stringify(env['KAFKA_SECURITY_PROTOCOL'])}`,
    );
  }
  const usesTls = protocol === 'SSL' || protocol === 'SASL_SSL';
  const usesSasl = protocol === 'SASL_PLAINTEXT' || protocol === 'SASL_SSL';
  // A setting the protocol ignores is a mistake: whoever set it believes the connection is protected.
  const ignored = [...(usesTls ? [] : KAFKA_TLS_VARIABLES), ...(usesSasl ? [] : KAFKA_SASL_VARIABLES)].find(
    (name) => env[name],
  );
  if (ignored) {
    const wanted = KAFKA_TLS_VARIABLES.includes(ignored) ? 'SSL or SASL_SSL' : 'SASL_PLAINTEXT or SASL_SSL';
    throw new ConfigError(
      ignored,
      `is set but KAFKA_SECURITY_PROTOCOL=${protocol} does not use it; set KAFKA_SECURITY_PROTOCOL to ${wanted}`,
    );
  }
  return {
    protocol,
    tls: usesTls ? kafkaTlsConfig(env) : undefined,
    sasl: usesSasl ? kafkaSaslConfig(env, protocol) : undefined,
  };
}

function kafkaTlsConfig(env: Env): KafkaTlsConfig {
  const ca = optionalFile(env, 'KAFKA_SSL_CA_FILE');
  if (ca) checkCertificates(ca, 'KAFKA_SSL_CA_FILE');
  const cert = optionalFile(env, 'KAFKA_SSL_CERT_FILE');
  const key = optionalFile(env, 'KAFKA_SSL_KEY_FILE');
  checkKeyPair(cert, key, 'KAFKA_SSL_CERT_FILE', 'KAFKA_SSL_KEY_FILE');
  return {
    ca: ca?.text,
    cert: cert?.text,
    key: key ? new Secret(key.text) : undefined,
    rejectUnauthorized: bool(env, 'KAFKA_SSL_REJECT_UNAUTHORIZED', true),
    verifyHostname: bool(env, 'KAFKA_SSL_VERIFY_HOSTNAME', true),
  };
}

function kafkaSaslConfig(env: Env, protocol: KafkaSecurityProtocol): KafkaSaslConfig {
  const given = (env['KAFKA_SASL_MECHANISM'] ?? '').trim().toUpperCase();
  const mechanism = KAFKA_SASL_MECHANISMS.find((candidate) => candidate === given);
  if (!mechanism) {
    const got = given
      ? `got ${JSON.stringify(env['KAFKA_SASL_MECHANISM'])}`
      : `required with KAFKA_SECURITY_PROTOCOL=${protocol}`;
    throw new ConfigError('KAFKA_SASL_MECHANISM', `expected ${KAFKA_SASL_MECHANISMS.join(', ')}; ${got}`);
  }
  const username = (env['KAFKA_SASL_USERNAME'] ?? '').trim();
  if (!username) throw new ConfigError('KAFKA_SASL_USERNAME', `is required with KAFKA_SECURITY_PROTOCOL=${protocol}`);
  return {
    mechanism,
    username,
    password: secretSetting(env, 'KAFKA_SASL_PASSWORD', `is required with KAFKA_SECURITY_PROTOCOL=${protocol}`),
  };
}
