// `bankstream acls print|apply`: the Kafka ACLs of each role (docs/security.md), as kafka-acls commands for
// an administrator to run, or created directly through the Admin API.
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../../config/config.ts';
import {
  ACL_ROLES,
  type AclRole,
  type RolePrincipals,
  applyAcls,
  defaultPrincipals,
  kafkaAclsCommands,
  plannedAcls,
} from '../../ops/acls.ts';

interface AclsOptions {
  role?: string[];
  processorPrincipal?: string;
  apiPrincipal?: string;
  sinkPrincipal?: string;
  upstreamPrincipal?: string;
  operatorPrincipal?: string;
  command?: string;
}

export function register(program: Command): void {
  const acls = program
    .command('acls')
    .description('the Kafka ACLs each role needs (processor, api, sink, upstream, operator)');
  withRoleOptions(acls.command('print'))
    .description('print kafka-acls commands granting each role what it needs, for APP_ID and the configured topics')
    .option(
      '--command <prefix>',
      'the kafka-acls tool and its connection options (default: kafka-acls.sh --bootstrap-server KAFKA_BROKERS --command-config admin.properties)',
    )
    .action((options: AclsOptions) => {
      const config = loadConfig();
      const command =
        options.command ??
        `kafka-acls.sh --bootstrap-server ${config.kafkaBrokers.join(',')} --command-config admin.properties`;
      for (const line of kafkaAclsCommands(
        plannedAcls(config, principals(config.appId, options), roles(options)),
        command,
      ))
        console.log(line);
    });
  withRoleOptions(acls.command('apply'))
    .description(
      'create the ACLs through the Admin API, connecting as the configured principal (needs ALTER on the cluster)',
    )
    .action(async (options: AclsOptions) => {
      const config = loadConfig();
      const created = await applyAcls(config, plannedAcls(config, principals(config.appId, options), roles(options)));
      console.log(`${created} ACL bindings created or already present`);
    });
}

function withRoleOptions(command: Command): Command {
  return command
    .option('--role <role...>', `roles to grant (${ACL_ROLES.join(', ')}; default all)`)
    .option('--processor-principal <principal>', 'default User:<APP_ID>')
    .option('--api-principal <principal>', 'default: the processor principal (the API runs in the instance)')
    .option('--sink-principal <principal>', 'default User:<APP_ID>-sink')
    .option('--upstream-principal <principal>', 'default User:<APP_ID>-upstream')
    .option('--operator-principal <principal>', 'default User:<APP_ID>-operator');
}

function roles(options: AclsOptions): AclRole[] {
  if (!options.role) return [...ACL_ROLES];
  return options.role.map((role) => {
    const known = ACL_ROLES.find((candidate) => candidate === role);
    if (!known) throw new ConfigError('--role', `expected ${ACL_ROLES.join(', ')}, got ${JSON.stringify(role)}`);
    return known;
  });
}

function principals(appId: string, options: AclsOptions): RolePrincipals {
  const defaults = defaultPrincipals(appId);
  const processor = principal('--processor-principal', options.processorPrincipal) ?? defaults.processor;
  return {
    processor,
    api: principal('--api-principal', options.apiPrincipal) ?? processor,
    sink: principal('--sink-principal', options.sinkPrincipal) ?? defaults.sink,
    upstream: principal('--upstream-principal', options.upstreamPrincipal) ?? defaults.upstream,
    operator: principal('--operator-principal', options.operatorPrincipal) ?? defaults.operator,
  };
}

function principal(option: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^[A-Za-z]+:\S+$/.test(value))
    throw new ConfigError(option, `expected a Kafka principal like User:alice, got ${JSON.stringify(value)}`);
  return value;
}
