// The deployment files against the code: the Dockerfile, docker-compose.yml, the Prometheus and
// Grafana provisioning, the Kubernetes manifests and the operations guide must parse and must use the
// ports, variables, commands and metric names the code has. Parsed with real parsers (yaml.ts).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import {
  dockerComposeAvailable,
  dockerComposeProblems,
  dockerComposeV1Available,
  dockerComposeV1Problems,
  parseYamlFile,
  parseYamlFiles,
} from './yaml.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
const at = (file: string) => path.join(ROOT, file);

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML/JSON manifests are untyped
type Json = Record<string, any>;

/**
 * Every variable src/config/config.ts reads, found where its code names them: env['X'], the parsers'
 * (env, 'X', ...), topic('X'), setting('param', 'X'), the *_VARIABLES lists and loops over names, and
 * the X_FILE twin of every secretSetting(env, 'X').
 */
function configVariables(): Set<string> {
  // config.ts and the files it composes (settings by area, since the config split).
  const source = readdirSync(at('src/config'))
    .filter((file) => file.endsWith('.ts'))
    .map((file) => read(`src/config/${file}`))
    .join('\n');
  const names = new Set<string>();
  const patterns = [
    /\benv\[\s*'([A-Z][A-Z0-9_]*)'\s*\]/g,
    /\(\s*env\s*,\s*'([A-Z][A-Z0-9_]*)'/g,
    /\btopic\(\s*'([A-Z][A-Z0-9_]*)'/g,
    /\bsetting\(\s*'[a-z]+'\s*,\s*'([A-Z][A-Z0-9_]*)'/g,
  ];
  for (const pattern of patterns) for (const m of source.matchAll(pattern)) names.add(m[1]!);
  for (const list of source.matchAll(/(?:_VARIABLES\s*=|const name of)\s*\[([^\]]*)\]/g)) {
    for (const m of list[1]!.matchAll(/'([A-Z][A-Z0-9_]*)'/g)) names.add(m[1]!);
  }
  for (const m of source.matchAll(/secretSetting\(\s*env\s*,\s*'([A-Z][A-Z0-9_]*)'/g)) names.add(`${m[1]}_FILE`);
  // The extraction itself must keep working when config.ts changes shape.
  for (const known of [
    'APP_ID',
    'INSTANCE_ID',
    'KAFKA_BROKERS',
    'PARTITIONS',
    'DATABASE_URL',
    'STATE_DIR',
    'HTTP_PORT',
    'TOPIC_INPUT',
    'LOG_LEVEL',
  ]) {
    if (!names.has(known))
      throw new Error(`configVariables() no longer finds ${known} in src/config/config.ts; update the extraction`);
  }
  return names;
}

/** ${NAME:-default} and ${NAME} as Docker Compose interpolates them (from `env`, else the default). */
function interpolate(value: unknown, env: Record<string, string> = {}): string {
  return String(value).replace(
    /\$\{([A-Z0-9_]+)(?::-([^}]*))?\}/g,
    (_, name: string, fallback?: string) => env[name] ?? fallback ?? '',
  );
}

function dockerfile(): { lines: string[]; stages: string[]; env: Record<string, string> } {
  const text = read('Dockerfile').replace(/\\\n/g, ' ');
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const stages = lines.filter((line) => line.startsWith('FROM '));
  const env: Record<string, string> = {};
  for (const line of lines.filter((l) => l.startsWith('ENV '))) {
    for (const m of line.slice(4).matchAll(/([A-Z_]+)=(\S+)/g)) env[m[1]!] = m[2]!;
  }
  return { lines, stages, env };
}

/** Commands the CLI registers (`program.command('x')` and sub-commands `topics.command('create')`). */
function cliCommands(): Set<string> {
  const dir = at('src/cli/commands');
  const names = new Set<string>();
  for (const file of readdirSync(dir)) {
    for (const m of readFileSync(path.join(dir, file), 'utf8').matchAll(/\.command\('([a-z-]+)/g)) names.add(m[1]!);
  }
  return names;
}

/** Every `bankstream <cmd> [<sub>]` in a shell command uses commands that exist. */
function expectKnownCommands(shell: string): void {
  const known = cliCommands();
  const uses = [...shell.matchAll(/bankstream ([a-z-]+)(?: ([a-z-]+))?/g)];
  expect(uses.length).toBeGreaterThan(0);
  for (const [, command, sub] of uses) {
    expect(known, `bankstream ${command}`).toContain(command);
    if (sub) expect(known, `bankstream ${command} ${sub}`).toContain(sub);
  }
}

describe('Dockerfile', () => {
  const { lines, stages, env } = dockerfile();

  it('should build in stages from node:24-slim and install production dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage).toMatch(/^FROM node:24-slim( AS \w+)?$/);
    expect(lines.some((line) => /npm ci --omit=dev/.test(line))).toBe(true);
  });

  it('should run as a non-root user with the state folder as a volume', () => {
    const user = lines.filter((line) => line.startsWith('USER ')).at(-1);
    expect(user).toBeDefined();
    expect(user).not.toMatch(/USER (root|0)(:|$)/);
    const volume = lines.find((line) => line.startsWith('VOLUME '));
    expect(env.STATE_DIR).toBeDefined();
    expect(volume).toContain(path.posix.dirname(env.STATE_DIR!));
  });

  it('should check /healthz on the configured port and start an instance with node', () => {
    expect(lines.find((line) => line.startsWith('HEALTHCHECK '))).toMatch(/\/healthz/);
    expect(lines.find((line) => line.startsWith('EXPOSE '))).toBe(`EXPOSE ${env.HTTP_PORT}`);
    expect(env.HTTP_HOST).toBe('0.0.0.0');
    const cmd = JSON.parse(lines.find((line) => line.startsWith('CMD '))!.slice(4)) as string[];
    expect(cmd[0]).toBe('node');
    expect(cmd.slice(-2)).toEqual(['src/cli/main.ts', 'start']);
    for (const name of Object.keys(env).filter((n) => n !== 'NODE_ENV'))
      expect(configVariables(), name).toContain(name);
  });

  it('should copy only files that exist and that .dockerignore does not exclude', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', '.git', '.bankstream']));
    for (const line of lines.filter((l) => l.startsWith('COPY ') && !l.includes('--from='))) {
      const sources = line.slice(5).split(/\s+/).slice(0, -1);
      for (const source of sources) {
        expect(existsSync(at(source)), source).toBe(true);
        expect(ignored, source).not.toContain(source);
      }
    }
  });
});

describe('docker-compose.yml', () => {
  const compose = parseYamlFile(at('docker-compose.yml'))[0] as Json;
  const services = compose.services as Record<string, Json>;
  const instances = Object.keys(services).filter((name) => /^bankstream-\d+$/.test(name));

  it('should be valid for Docker Compose (docker compose config where a Compose client exists, and PyYAML with the checks below)', () => {
    if (dockerComposeAvailable()) expect(dockerComposeProblems(at('docker-compose.yml'))).toBe('');
    else if (dockerComposeV1Available()) expect(dockerComposeV1Problems(at('docker-compose.yml'))).toBe('');
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['kafka', 'postgres', 'init', 'prometheus', 'grafana']),
    );
    for (const [name, service] of Object.entries(services)) expect(service.image ?? service.build, name).toBeDefined();
  });

  it('should run Kafka 4.1.1 in KRaft mode with the transaction settings of scripts/kafka.sh', () => {
    const kafka = services.kafka!;
    expect(kafka.image).toBe('apache/kafka:4.1.1');
    const env = kafka.environment as Record<string, string>;
    expect(env.KAFKA_PROCESS_ROLES).toBe('broker,controller');
    const script = read('scripts/kafka.sh');
    // scripts/kafka.sh writes these for one node ($replication = $min_isr = 1 there).
    const oneNode: Record<string, string> = {
      'offsets.topic.replication.factor': '1',
      'offsets.topic.num.partitions': '12',
      'transaction.state.log.replication.factor': '1',
      'transaction.state.log.min.isr': '1',
      'transaction.state.log.num.partitions': '12',
      'transaction.max.timeout.ms': '900000',
      'group.initial.rebalance.delay.ms': '0',
      'auto.create.topics.enable': 'false',
      'default.replication.factor': '1',
      'log.cleaner.enable': 'true',
    };
    for (const [property, value] of Object.entries(oneNode)) {
      expect(script, property).toMatch(new RegExp(`^${property.replace(/\./g, '\\.')}=`, 'm'));
      expect(String(env[`KAFKA_${property.toUpperCase().replace(/\./g, '_')}`]), property).toBe(value);
    }
  });

  it('should start three instances with distinct ids, ports and advertised URLs after the one-shot init', () => {
    expect(instances).toHaveLength(3);
    const variables = configVariables();
    const ids = new Set<string>();
    const hostPorts = new Set<string>();
    for (const name of instances) {
      const service = services[name]!;
      const env = service.environment as Record<string, string>;
      for (const variable of Object.keys(env)) expect(variables, `${name}: ${variable}`).toContain(variable);
      ids.add(env.INSTANCE_ID!);
      expect(env.ADVERTISED_URL).toBe(`http://${name}:${env.HTTP_PORT}`);
      expect(env.HTTP_HOST).toBe('0.0.0.0');
      expect(env.KAFKA_BROKERS).toMatch(/^kafka:\d+$/);
      expect(interpolate(env.DATABASE_URL)).toMatch(/^postgres:\/\/[^@]+@postgres:5432\/bankstream$/);
      const [port] = service.ports as string[];
      const [, hostPort, containerPort] = /^(?:[\d.]+:)?(\d+):(\d+)$/.exec(interpolate(port))!;
      expect(containerPort).toBe(env.HTTP_PORT);
      hostPorts.add(hostPort!);
      expect(
        (service.volumes as string[]).some((v) => v.endsWith(`:${path.posix.dirname(env.STATE_DIR!)}`)),
        name,
      ).toBe(true);
      expect(service.depends_on.init.condition).toBe('service_completed_successfully');
      expect(service.stop_grace_period).toBeDefined();
      expect((env.AUTH_DEV_SECRET ? interpolate(env.AUTH_DEV_SECRET) : 'x'.repeat(32)).length).toBeGreaterThanOrEqual(
        32,
      );
    }
    expect(ids.size).toBe(3);
    expect(hostPorts.size).toBe(3);
    // Every instance verifies the others' dev tokens only with one shared secret.
    expect(new Set(instances.map((name) => services[name]!.environment.AUTH_DEV_SECRET)).size).toBe(1);
  });

  it('should migrate and create topics in the init service before anything else', () => {
    const init = services.init!;
    expect(init.restart).toBe('no');
    expectKnownCommands((init.command as string[]).join(' '));
    expect((init.command as string[]).join(' ')).toMatch(/bankstream migrate && bankstream topics create/);
    expect(init.depends_on.kafka.condition).toBe('service_healthy');
    expect(init.depends_on.postgres.condition).toBe('service_healthy');
  });

  it('should scrape every instance with Prometheus and provision Grafana with its datasource and dashboard', () => {
    const prometheus = parseYamlFile(at('deploy/prometheus/prometheus.yml'))[0] as Json;
    const job = (prometheus.scrape_configs as Json[]).find((c) => c.job_name === 'bankstream')!;
    expect(job.metrics_path).toBe('/metrics');
    const targets = (job.static_configs as Json[]).flatMap((c) => c.targets as string[]);
    // The management port: /metrics without a token there (on HTTP_PORT it needs an admin token).
    expect(targets.sort()).toEqual(
      instances.map((name) => `${name}:${services[name]!.environment.MANAGEMENT_PORT}`).sort(),
    );
    for (const name of instances)
      expect(services[name]!.ports.join(' ')).not.toContain(`:${services[name]!.environment.MANAGEMENT_PORT}`);
    const mounts = [...(services.prometheus!.volumes as string[]), ...(services.grafana!.volumes as string[])];
    for (const mount of mounts.filter((m) => m.startsWith('./')))
      expect(existsSync(at(mount.split(':')[0]!)), mount).toBe(true);

    const [datasources, providers] = parseYamlFiles([
      at('deploy/grafana/provisioning/datasources/prometheus.yml'),
      at('deploy/grafana/provisioning/dashboards/bankstream.yml'),
    ]);
    const datasource = ((datasources![0] as Json).datasources as Json[])[0]!;
    expect(datasource.url).toBe('http://prometheus:9090');
    const providerPath = ((providers![0] as Json).providers as Json[])[0]!.options.path as string;
    expect(mounts).toContain(`./deploy/grafana/dashboards:${providerPath}:ro`);
    const dashboard = JSON.parse(read('deploy/grafana/dashboards/bankstream.json')) as Json;
    const panels = (dashboard.panels as Json[]).filter((panel) => panel.type !== 'row');
    for (const panel of panels) expect(panel.datasource.uid, panel.title).toBe(datasource.uid);
    const titles = (dashboard.panels as Json[]).filter((panel) => panel.type === 'row').map((panel) => panel.title);
    expect(titles).toEqual(
      expect.arrayContaining(['Throughput', 'Latency', 'Lag', 'Tasks and restore', 'Sink', 'HTTP']),
    );
  });
});

describe('Grafana dashboard metrics', () => {
  // prom-client's default metrics, registered with the prefix bankstream_ (collectDefaultMetrics).
  const DEFAULTS = new Set([
    'bankstream_process_cpu_seconds_total',
    'bankstream_nodejs_heap_size_used_bytes',
    'bankstream_nodejs_eventloop_lag_p99_seconds',
  ]);

  it('should only query metrics the code exports', () => {
    const sources = readdirSync(at('src/metrics'))
      .filter((file) => file.endsWith('.ts'))
      .map((file) => read(`src/metrics/${file}`))
      .join('\n');
    const exported = new Set([...sources.matchAll(/'(bankstream_[a-z0-9_]+)'/g)].map((m) => m[1]!));
    expect(read('src/metrics/metrics.ts')).toMatch(/collectDefaultMetrics\(\{[^}]*prefix: 'bankstream_'/);
    const dashboard = read('deploy/grafana/dashboards/bankstream.json');
    const used = new Set(
      [...dashboard.matchAll(/\b(bankstream_[a-z0-9_]+?)(?:_bucket|_count|_sum)?\b/g)].map((m) => m[1]!),
    );
    used.delete('bankstream_streams_state'); // also the variable query; checked below
    expect(exported).toContain('bankstream_streams_state');
    for (const name of used) expect(exported.has(name) || DEFAULTS.has(name), name).toBe(true);
  });
});

describe('Kubernetes manifests', () => {
  const dir = at('deploy/k8s');
  const files = readdirSync(dir)
    .filter((file) => file.endsWith('.yaml'))
    .sort();
  const docs = parseYamlFiles(files.map((file) => path.join(dir, file))).flat() as Json[];
  const byKind = (kind: string) => docs.filter((doc) => doc.kind === kind);
  const one = (kind: string) => {
    const found = byKind(kind);
    expect(found, kind).toHaveLength(1);
    return found[0]!;
  };
  const secretNamed = (name: string) => byKind('Secret').find((secret) => secret.metadata.name === name)!;

  it('should parse, and every object should have apiVersion, kind and a name', () => {
    expect(docs.length).toBeGreaterThanOrEqual(8);
    for (const doc of docs) {
      expect(doc.apiVersion, JSON.stringify(doc).slice(0, 80)).toBeTruthy();
      expect(doc.kind).toBeTruthy();
      if (doc.kind !== 'Kustomization') expect(doc.metadata?.name).toBeTruthy();
    }
    const kustomization = one('Kustomization');
    expect([...kustomization.resources].sort()).toEqual(files.filter((file) => file !== 'kustomization.yaml'));
  });

  it('should run a StatefulSet with stable instance ids, a state volume, probes and a long enough grace period', () => {
    const set = one('StatefulSet');
    const pod = set.spec.template.spec;
    const container = pod.containers[0];
    const env = Object.fromEntries((container.env as Json[]).map((e) => [e.name, e]));
    expect(env.POD_NAME.valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    expect(env.INSTANCE_ID.value).toBe('$(POD_NAME)');
    const headless = byKind('Service').find((s) => s.spec.clusterIP === 'None')!;
    expect(set.spec.serviceName).toBe(headless.metadata.name);
    const httpPort = container.ports.find((p: Json) => p.name === 'http').containerPort as number;
    expect(env.ADVERTISED_URL.value).toBe(
      `http://$(POD_NAME).${headless.metadata.name}.$(POD_NAMESPACE).svc.cluster.local:${httpPort}`,
    );
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
    expect(pod.securityContext.runAsNonRoot).toBe(true);

    const config = one('ConfigMap');
    expect(String(httpPort)).toBe(config.data.HTTP_PORT);
    const managementPort = container.ports.find((p: Json) => p.name === 'management').containerPort as number;
    expect(String(managementPort)).toBe(config.data.MANAGEMENT_PORT);
    expect(set.spec.template.metadata.annotations['prometheus.io/port']).toBe(String(managementPort));
    expect(config.data.HTTP_HOST).toBe('0.0.0.0');
    const claim = set.spec.volumeClaimTemplates[0];
    const mount = container.volumeMounts.find((m: Json) => m.name === claim.metadata.name);
    expect(mount.mountPath).toBe(path.posix.dirname(config.data.STATE_DIR));
    expect(claim.spec.accessModes).toEqual(['ReadWriteOnce']);

    const refs = (container.envFrom as Json[]).map((e) => e.configMapRef?.name ?? e.secretRef?.name);
    expect(refs).toEqual([config.metadata.name, secretNamed('bankstream-secrets').metadata.name]);
  });

  it('should roll pods one at a time as static members restarted within the session timeout (issue 20)', () => {
    const set = one('StatefulSet');
    const pod = set.spec.template.spec;
    const container = pod.containers[0];
    const data = one('ConfigMap').data as Record<string, string>;
    const names = ['STATIC_MEMBERSHIP', 'LEAVE_GROUP_ON_CLOSE', 'SESSION_TIMEOUT_MS'];
    const membership = loadConfig(Object.fromEntries(names.map((n) => [n, data[n]]))).membership;
    expect(membership.staticMembership).toBe(true);
    expect(membership.leaveGroupOnClose).toBe(false);
    // preStop, then the graceful stop (bounded by the 10 s transaction timeout), then a new pod: all of it
    // within the session timeout, with room for rescheduling; the grace period covers the stop.
    const preStopS = Number((container.lifecycle.preStop.exec.command as string[]).at(-1));
    const transactionTimeoutS = 10;
    expect(membership.sessionTimeoutMs / 1000).toBeGreaterThanOrEqual(preStopS + transactionTimeoutS + 20);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(preStopS + transactionTimeoutS);
    // One pod down at a time, in a rollout and in a drain: at most one member's partitions wait.
    expect(set.spec.updateStrategy.type).toBe('RollingUpdate');
    expect(set.spec.updateStrategy.rollingUpdate?.maxUnavailable ?? 1).toBe(1);
    expect(one('PodDisruptionBudget').spec.maxUnavailable).toBe(1);
  });

  it('should use only configuration variables the code reads', () => {
    const variables = configVariables();
    const secretKeys = byKind('Secret').flatMap((secret) => Object.keys(secret.stringData ?? secret.data));
    for (const name of [...Object.keys(one('ConfigMap').data), ...secretKeys]) expect(variables, name).toContain(name);
    const containers = [one('StatefulSet'), one('Deployment'), one('Job')].map(
      (o) => o.spec.template.spec.containers[0],
    );
    for (const container of containers)
      for (const e of (container.env ?? []) as Json[])
        if (!e.name.startsWith('POD_')) expect(variables, e.name).toContain(e.name);
  });

  it('should route clients and instances through Services, bound disruptions and run the init job', () => {
    const labels = one('StatefulSet').spec.template.metadata.labels as Record<string, string>;
    const matches = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    const services = byKind('Service');
    expect(services).toHaveLength(2);
    for (const service of services) expect(matches(service.spec.selector), service.metadata.name).toBe(true);
    expect(services.find((s) => s.spec.clusterIP === 'None')!.spec.publishNotReadyAddresses).toBe(true);
    const pdb = one('PodDisruptionBudget');
    expect(matches(pdb.spec.selector.matchLabels)).toBe(true);
    expect(pdb.spec.maxUnavailable).toBe(1);
    const job = one('Job');
    expectKnownCommands((job.spec.template.spec.containers[0].command as string[]).join(' '));
  });
});

describe('secure by default: SASL/SCRAM, the ACLs of bankstream acls, one role per service, the cluster secret', () => {
  const compose = parseYamlFile(at('docker-compose.yml'))[0] as Json;
  const services = compose.services as Record<string, Json>;
  const envOf = (name: string) =>
    Object.fromEntries(
      Object.entries(services[name]!.environment as Record<string, string>).map(([k, v]) => [k, interpolate(v)]),
    );

  it('should run the compose broker with SASL on every listener and the StandardAuthorizer denying what no ACL allows', () => {
    const env = services.kafka!.environment as Record<string, string>;
    for (const mapping of env.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP!.split(','))
      expect(mapping, mapping).toMatch(/:SASL_(PLAINTEXT|SSL)$/);
    expect(env.KAFKA_SASL_ENABLED_MECHANISMS).toContain('SCRAM-SHA-512');
    expect(env.KAFKA_AUTHORIZER_CLASS_NAME).toBe('org.apache.kafka.metadata.authorizer.StandardAuthorizer');
    expect(env.KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND).toBe('false');
    expect(env.KAFKA_SUPER_USERS).toBe('User:admin');
    // PLAIN knows only the admin user: every user_<name> entry of the broker's JAAS settings is admin.
    const plainUsers = Object.values(env).flatMap((value) =>
      [...String(value).matchAll(/user_([A-Za-z0-9_-]+)=/g)].map((m) => m[1]),
    );
    expect(new Set(plainUsers)).toEqual(new Set(['admin']));
  });

  it('should give each compose service the principal of its role in bankstream acls, created as a SCRAM user', () => {
    const users = (services['kafka-users']!.command as string[]).join(' ');
    const defaults = { processor: 'bankstream', sink: 'bankstream-sink', upstream: 'bankstream-upstream' };
    for (const user of Object.values(defaults)) expect(users).toContain(`${user}:`);
    const instances = Object.keys(services).filter((name) => /^bankstream-\d+$/.test(name));
    for (const name of [...instances, 'sink']) {
      const env = envOf(name);
      expect(env.KAFKA_SECURITY_PROTOCOL, name).toBe('SASL_PLAINTEXT');
      expect(env.KAFKA_SASL_MECHANISM, name).toBe('SCRAM-SHA-512');
      expect(env.KAFKA_SASL_USERNAME, name).toBe(name === 'sink' ? defaults.sink : defaults.processor);
      expect(env.APP_ID).toBe('bankstream');
    }
    for (const name of instances)
      expect((services[name]!.command as string[]).slice(-2), name).toEqual(['start', '--no-sink']);
    expect((services.sink!.command as string[]).at(-1)).toBe('sink');
    const init = envOf('init');
    expect(init.KAFKA_SASL_USERNAME).toBe('admin');
    expect((services.init!.command as string[]).join(' ')).toMatch(/bankstream topics create && bankstream acls apply/);
  });

  it('should give every compose instance the cluster secret init generates once into a shared volume', () => {
    const init = services.init!;
    const command = (init.command as string[]).join(' ');
    const [volume, mount] = (init.volumes as string[])[0]!.split(':');
    expect(command).toMatch(/umask 077/);
    expect(command).toMatch(new RegExp(`secret=${mount}/cluster-secret`));
    expect(command).toMatch(/randomBytes\(48\)/);
    for (const name of Object.keys(services).filter((n) => /^bankstream-\d+$/.test(n))) {
      const file = envOf(name).CLUSTER_SECRET_FILE!;
      const mounted = (services[name]!.volumes as string[]).find((v) => v.startsWith(`${volume}:`))!;
      expect(mounted, name).toBe(`${volume}:${path.posix.dirname(file)}:ro`);
      expect(path.posix.basename(file)).toBe('cluster-secret');
      expect(envOf(name).CLUSTER_SECRET).toBeUndefined();
    }
    expect(Object.keys(compose.volumes as Json)).toContain(volume);
  });

  it('should run the Kubernetes pods with SASL_SSL/SCRAM, one principal per role, and the cluster secret from a Secret', () => {
    const docs = parseYamlFiles(
      readdirSync(at('deploy/k8s'))
        .filter((f) => f.endsWith('.yaml'))
        .map((f) => path.join(at('deploy/k8s'), f)),
    ).flat() as Json[];
    const of = (kind: string) => docs.filter((d) => d.kind === kind);
    const config = of('ConfigMap')[0]!.data as Record<string, string>;
    const secrets = new Map(
      of('Secret').map((s) => [s.metadata.name as string, s.stringData as Record<string, string>]),
    );
    const resolve = (container: Json): Record<string, string> => {
      const out: Record<string, string> = {};
      for (const source of (container.envFrom ?? []) as Json[])
        Object.assign(out, source.configMapRef ? config : secrets.get(source.secretRef.name));
      for (const e of (container.env ?? []) as Json[])
        out[e.name] = e.value ?? `<${e.valueFrom?.secretKeyRef?.name}/${e.valueFrom?.secretKeyRef?.key}>`;
      return out;
    };
    const instance = resolve(of('StatefulSet')[0]!.spec.template.spec.containers[0]);
    const sink = resolve(of('Deployment')[0]!.spec.template.spec.containers[0]);
    const init = resolve(of('Job')[0]!.spec.template.spec.containers[0]);
    for (const env of [instance, sink, init]) {
      expect(env.KAFKA_SECURITY_PROTOCOL).toBe('SASL_SSL');
      expect(env.KAFKA_SASL_MECHANISM).toBe('SCRAM-SHA-512');
      expect(env.KAFKA_SASL_PASSWORD).toBeDefined();
    }
    expect(instance.KAFKA_SASL_USERNAME).toBe('bankstream');
    expect(sink.KAFKA_SASL_USERNAME).toBe('bankstream-sink');
    expect(init.KAFKA_SASL_USERNAME).toBe('admin');
    expect(instance.CLUSTER_SECRET).toBe(secrets.get('bankstream-secrets')!.CLUSTER_SECRET);
    // The placeholder is refused at start-up (fewer than 32 characters): nobody runs on it by mistake.
    expect(instance.CLUSTER_SECRET!.length).toBeLessThan(32);
    expect(of('StatefulSet')[0]!.spec.template.spec.containers[0].args.slice(-2)).toEqual(['start', '--no-sink']);
    expect((of('Job')[0]!.spec.template.spec.containers[0].command as string[]).join(' ')).toMatch(
      /bankstream acls apply/,
    );
  });
});

describe('docs/operations.md', () => {
  it('should describe every configuration variable', () => {
    const doc = read('docs/operations.md');
    for (const name of configVariables()) expect(doc, name).toContain(`\`${name}\``);
  });
});
