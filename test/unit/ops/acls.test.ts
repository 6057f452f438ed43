import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { aclBindings, defaultPrincipals, kafkaAclsCommands, plannedAcls } from '../../../src/ops/acls.ts';

const config = loadConfig({ APP_ID: 'bank' });
const grants = plannedAcls(config, defaultPrincipals('bank'));
const of = (role: string) =>
  grants
    .filter((grant) => grant.role === role)
    .map(
      (g) => `${g.resourceType} ${g.resourceName}${g.patternType === 'PREFIXED' ? '*' : ''} ${g.operations.join(',')}`,
    );

describe('plannedAcls', () => {
  it('should let an upstream producer write the input topic and nothing else', () => {
    expect(of('upstream')).toEqual([
      'TOPIC transaction_initiated WRITE,DESCRIBE',
      'CLUSTER kafka-cluster IDEMPOTENT_WRITE',
    ]);
  });

  it('should give the processor its group, its transactional ids and exactly its topics', () => {
    expect(of('processor')).toEqual([
      'TOPIC transaction_initiated READ,DESCRIBE',
      'TOPIC bank-credits READ,WRITE,DESCRIBE',
      'TOPIC bank-accounts-changelog READ,WRITE,DESCRIBE',
      'TOPIC bank-balances-changelog READ,WRITE,DESCRIBE',
      'TOPIC bank-transfers-changelog READ,WRITE,DESCRIBE',
      'TOPIC bank-holds-changelog READ,WRITE,DESCRIBE',
      'TOPIC transaction_completed WRITE,DESCRIBE',
      'TOPIC transaction_failed WRITE,DESCRIBE',
      'TOPIC audit_log WRITE,DESCRIBE',
      'TOPIC transaction_initiated.dlq WRITE,DESCRIBE',
      'GROUP bank READ,DESCRIBE',
      'TRANSACTIONAL_ID bank-* WRITE,DESCRIBE',
      'CLUSTER kafka-cluster IDEMPOTENT_WRITE',
    ]);
  });

  it('should let the sink read the outcome topics in its own group only', () => {
    expect(of('sink')).toEqual([
      'TOPIC transaction_completed READ,DESCRIBE',
      'TOPIC transaction_failed READ,DESCRIBE',
      'TOPIC audit_log READ,DESCRIBE',
      'GROUP bank-sink READ,DESCRIBE',
    ]);
  });

  it('should follow renamed topics and give each role its principal', () => {
    const renamed = loadConfig({ APP_ID: 'bank', TOPIC_INPUT: 'commands' });
    const upstream = plannedAcls(renamed, { ...defaultPrincipals('bank'), upstream: 'User:payments-gateway' }, [
      'upstream',
    ]);

    expect(upstream[0]).toMatchObject({
      principal: 'User:payments-gateway',
      resourceName: 'commands',
      operations: ['WRITE', 'DESCRIBE'],
    });
  });
});

describe('kafkaAclsCommands', () => {
  it('should print one kafka-acls command per resource with every operation, prefixed patterns marked', () => {
    const lines = kafkaAclsCommands(
      plannedAcls(config, defaultPrincipals('bank'), ['processor']),
      'kafka-acls.sh --bootstrap-server b:9093',
    );

    expect(lines[0]).toBe('# processor: User:bank');
    expect(lines).toContain(
      'kafka-acls.sh --bootstrap-server b:9093 --add --allow-principal User:bank --operation Read --operation Describe --topic transaction_initiated   # consume commands',
    );
    expect(lines).toContain(
      'kafka-acls.sh --bootstrap-server b:9093 --add --allow-principal User:bank --operation Write --operation Describe --transactional-id bank- --resource-pattern-type prefixed   # exactly-once transactions of every instance',
    );
    expect(lines).toContain(
      'kafka-acls.sh --bootstrap-server b:9093 --add --allow-principal User:bank --operation IdempotentWrite --cluster   # idempotent producer',
    );
  });

  it('should quote a principal that the shell would split', () => {
    const [, line] = kafkaAclsCommands(
      plannedAcls(config, { ...defaultPrincipals('bank'), upstream: "User:CN=gateway, O=Bank's" }, ['upstream']),
      'kafka-acls',
    );

    expect(line).toContain(`--allow-principal 'User:CN=gateway, O=Bank'\\''s'`);
  });
});

describe('aclBindings', () => {
  it('should make one ALLOW binding per operation', () => {
    const bindings = aclBindings(plannedAcls(config, defaultPrincipals('bank'), ['upstream']));

    expect(bindings).toHaveLength(3);
    expect(bindings[0]).toEqual({
      resourceType: 2,
      resourceName: 'transaction_initiated',
      resourcePatternType: 3,
      principal: 'User:bank-upstream',
      host: '*',
      operation: 4,
      permissionType: 3,
    });
  });
});
