import { describe, expect, it } from 'vitest';
import type { KafkaSecurityConfig } from '../../../src/config/config.ts';
import { Secret } from '../../../src/config/secret.ts';
import {
  explainKafkaError,
  kafkaConnectionOptions,
  kafkajsConnectionOptions,
  tlsOptions,
} from '../../../src/kafka/security.ts';

const tls = { ca: 'CA-PEM', cert: undefined, key: undefined, rejectUnauthorized: true, verifyHostname: true };
const saslSsl: KafkaSecurityConfig = {
  protocol: 'SASL_SSL',
  tls,
  sasl: { mechanism: 'SCRAM-SHA-512', username: 'bank', password: new Secret('pw') },
};

/** An error tree shaped like @platformatic/kafka's: MultipleErrors → NetworkError → cause. */
function clientError(leaf: object, broker = '127.0.0.1:9093'): Error {
  const network = Object.assign(new Error(`Connection to ${broker} failed.`), { code: 'PLT_KFK_NETWORK', cause: leaf });
  return Object.assign(new Error('Listing topics failed.'), { code: 'PLT_KFK_MULTIPLE', errors: [network] });
}

describe('kafkaConnectionOptions', () => {
  it('should give no TLS and no SASL for PLAINTEXT', () => {
    expect(
      kafkaConnectionOptions({ protocol: 'PLAINTEXT', tls: undefined, sasl: undefined }, ['127.0.0.1:9092']),
    ).toEqual({});
  });

  it('should pass the password as a provider so that the options object holds no password', async () => {
    const options = kafkaConnectionOptions(saslSsl, ['127.0.0.1:9093']);

    expect(options.sasl).toMatchObject({ mechanism: 'SCRAM-SHA-512', username: 'bank' });
    expect(JSON.stringify(options)).not.toContain('"pw"');
    expect(await (options.sasl!.password as () => string)()).toBe('pw');
    expect(options.tls).toMatchObject({ ca: 'CA-PEM', rejectUnauthorized: true, minVersion: 'TLSv1.2' });
  });

  it('should send SNI only when a broker is named by host name', () => {
    expect(kafkaConnectionOptions(saslSsl, ['127.0.0.1:9093', '[::1]:9093']).tlsServerName).toBeUndefined();
    expect(kafkaConnectionOptions(saslSsl, ['kafka-0.example.com:9093']).tlsServerName).toBe(true);
  });
});

describe('tlsOptions', () => {
  it('should keep host name verification unless KAFKA_SSL_VERIFY_HOSTNAME turned it off, and hand over the client key', () => {
    expect(tlsOptions(tls).checkServerIdentity).toBeUndefined();
    const relaxed = tlsOptions({ ...tls, verifyHostname: false, cert: 'CERT', key: new Secret('KEY') });

    expect(relaxed.checkServerIdentity?.('example.com', {} as never)).toBeUndefined();
    expect(relaxed).toMatchObject({ rejectUnauthorized: true, cert: 'CERT', key: 'KEY' });
  });
});

describe('kafkajsConnectionOptions', () => {
  it.each([
    ['PLAIN', 'plain'],
    ['SCRAM-SHA-256', 'scram-sha-256'],
    ['SCRAM-SHA-512', 'scram-sha-512'],
  ] as const)('should map %s to the KafkaJS mechanism %s with the same TLS options', (mechanism, kafkajs) => {
    const options = kafkajsConnectionOptions({
      ...saslSsl,
      sasl: { mechanism, username: 'bank', password: new Secret('pw') },
    });

    expect(options.sasl).toEqual({ mechanism: kafkajs, username: 'bank', password: 'pw' });
    expect(options.ssl).toMatchObject({ ca: 'CA-PEM', rejectUnauthorized: true });
  });
});

describe('explainKafkaError', () => {
  it('should name the SASL settings, never the password, when authentication fails', () => {
    const leaf = Object.assign(new Error('SASL authentication failed.'), {
      code: 'PLT_KFK_AUTHENTICATION',
      cause: Object.assign(new Error('x'), { apiId: 'SASL_AUTHENTICATION_FAILED' }),
    });

    const explained = explainKafkaError(clientError(leaf), saslSsl);

    expect(explained?.code).toBe('kafka_connection_failed');
    expect(explained?.message).toBe(
      'SASL authentication failed (127.0.0.1:9093): the broker refused KAFKA_SASL_USERNAME with KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE) for SCRAM-SHA-512',
    );
  });

  it('should point at KAFKA_SSL_CA_FILE when the certificate is not trusted, and at the host name when it does not match', () => {
    const untrusted = Object.assign(new Error('self-signed certificate in certificate chain'), {
      code: 'SELF_SIGNED_CERT_IN_CHAIN',
    });
    const mismatch = Object.assign(new Error("Hostname/IP does not match certificate's altnames"), {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });

    expect(explainKafkaError(clientError(untrusted), saslSsl)?.message).toMatch(
      /not trusted \(127\.0\.0\.1:9093\): SELF_SIGNED_CERT_IN_CHAIN .*KAFKA_SSL_CA_FILE must hold the CA/,
    );
    expect(explainKafkaError(clientError(untrusted), { ...saslSsl, tls: { ...tls, ca: undefined } })?.message).toMatch(
      /KAFKA_SSL_CA_FILE is not set/,
    );
    expect(explainKafkaError(clientError(mismatch), saslSsl)?.message).toMatch(
      /does not match its address.*KAFKA_SSL_VERIFY_HOSTNAME=false/,
    );
  });

  it('should explain a listener that needs TLS, a client certificate or SASL', () => {
    const needsTls = Object.assign(new Error('Listing topics failed.'), {
      errors: [Object.assign(new Error('Broker requires TLS.'), { code: 'PLT_KFK_USER' })],
    });
    const closed = Object.assign(new Error('Listing topics failed.'), { errors: [new Error('Connection closed')] });
    const noSasl = clientError(
      Object.assign(new Error('Cannot find a suitable SASL mechanism.'), { cause: new Error('Connection closed') }),
    );

    expect(explainKafkaError(needsTls)?.message).toMatch(
      /requires TLS: set KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL \(it is PLAINTEXT\)/,
    );
    expect(explainKafkaError(closed, { ...saslSsl, protocol: 'SSL', sasl: undefined })?.message).toMatch(
      /may require a client certificate/,
    );
    expect(explainKafkaError(noSasl, saslSsl)?.message).toMatch(/during the SASL handshake/);
  });

  it('should point at the ACLs when the broker refuses an authorized operation, and leave other errors alone', () => {
    const denied = Object.assign(new Error('Received response with error'), {
      errors: [Object.assign(new Error('Topic authorization failed'), { apiId: 'TOPIC_AUTHORIZATION_FAILED' })],
    });

    expect(explainKafkaError(denied, saslSsl)).toMatchObject({
      code: 'kafka_not_authorized',
      message: expect.stringMatching(/refused KAFKA_SASL_USERNAME=bank: TOPIC_AUTHORIZATION_FAILED/),
    });
    expect(explainKafkaError(new Error('connect ECONNREFUSED'), saslSsl)).toBeUndefined();
    expect(explainKafkaError(undefined)).toBeUndefined();
  });

  it('should summarize the client options as well as the configuration', () => {
    const leaf = Object.assign(new Error('x'), { apiId: 'SASL_AUTHENTICATION_FAILED' });

    expect(explainKafkaError(clientError(leaf), kafkaConnectionOptions(saslSsl, ['127.0.0.1:9093']))?.message).toMatch(
      /for SCRAM-SHA-512$/,
    );
  });
});
