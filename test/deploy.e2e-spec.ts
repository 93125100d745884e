import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { freePort } from './support/free-port';
import path from 'node:path';
import { loadAll } from 'js-yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1';
import { ConfigValidationError, loadConfig } from '@app/config';
import { envSchema } from '../libs/config/src/config.schema';
import { parseProvidersFile } from '../libs/generation/src/providers/providers-file';
import { createWorker, WorkerApp } from '../apps/gateway/src/worker';
import { startGateway, TestGateway, uniqueRedisPrefix } from './support/gateway';
import { testEnv } from './support/test-env';
import { loadYamlFile, repoFile, ROOT } from './monitoring.helpers';

/**
 * Docker and a cluster are not available to the tests, so the deployment artefacts are checked
 * by reading them: Kubernetes manifests against the API schemas (kubernetes-models), then the
 * structure operators rely on (probes on the app's real health routes and port, graceful
 * shutdown budget, non-root), Dockerfile/.dockerignore/docker-compose consistency, and every
 * environment variable they set against the config schema.
 */

const K8S_DIR = 'deploy/kubernetes';
const KNOWN_ENV = new Set(Object.keys(envSchema.shape));

/* eslint-disable @typescript-eslint/no-explicit-any -- manifests are untyped YAML */
type Manifest = Record<string, any>;

function manifests(file: string): Manifest[] {
  return (loadAll(repoFile(path.join(K8S_DIR, file))) as Manifest[]).filter(Boolean);
}

const files = readdirSync(path.join(ROOT, K8S_DIR)).filter((f) => f.endsWith('.yaml'));
const all = files.flatMap((file) => manifests(file).map((doc) => ({ file, doc })));
const byKind = (kind: string) => all.filter((m) => m.doc.kind === kind).map((m) => m.doc);
const deployment = (name: string) =>
  byKind('Deployment').find((d) => d.metadata.name === name) as Manifest;
const configMap = (name: string) =>
  byKind('ConfigMap').find((d) => d.metadata.name === name) as Manifest;

const api = deployment('switchyard');
const worker = deployment('switchyard-worker');
const appConfig = configMap('switchyard-config').data as Record<string, string>;
const apiContainer = api.spec.template.spec.containers.find((c: Manifest) => c.name === 'api');

/** The Secret example's variables with valid values, for loading the full production config. */
const validSecrets = {
  DATABASE_URL: 'postgres://switchyard:pw@postgres.example:5432/switchyard',
  REDIS_URL: 'redis://redis.example:6379',
  JWT_SECRET: randomBytes(36).toString('base64'),
  SESSION_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
};

/** dist/apps/x/src/main.js → apps/x/src/main.ts: the compiled entry point has a source. */
/** The script a `node [flags…] script [args…]` command runs. */
function entryPoint(command: string[]): string {
  return command.slice(1).find((arg) => !arg.startsWith('-')) as string;
}

/** `npm start` as an argv: what the image and the Deployment must run for the gateway. */
function npmStartCommand(): string[] {
  const pkg = JSON.parse(repoFile('package.json')) as { scripts: { start: string } };
  // `exec` hands npm's shell over to node, so signals reach it; a container runs node directly.
  return pkg.scripts.start.replace(/^exec\s+/, '').split(/\s+/);
}

function sourceOf(distPath: string): string {
  return distPath.replace(/^dist\//, '').replace(/\.js$/, '.ts');
}

describe('Kubernetes manifests', () => {
  const schemas: Record<string, new (data: any) => { validate(): void }> = {
    Namespace,
    ConfigMap,
    Secret,
    Service,
    Deployment,
    HorizontalPodAutoscaler,
    PodDisruptionBudget,
  };

  it('parse, and validate against the Kubernetes API schemas', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'deployment.yaml',
        'worker-deployment.yaml',
        'service.yaml',
        'hpa.yaml',
        'pdb.yaml',
        'configmap.yaml',
        'secret.example.yaml',
      ]),
    );
    const problems: string[] = [];
    for (const { file, doc } of all) {
      if (doc.kind === 'Kustomization') continue;
      const Model = schemas[doc.kind];
      if (!Model) {
        problems.push(`${file}: no schema check for kind ${doc.kind}`);
        continue;
      }
      try {
        new Model(doc).validate();
      } catch (err) {
        problems.push(`${file} ${doc.kind}/${doc.metadata?.name}: ${(err as Error).message}`);
      }
      if (doc.kind !== 'Namespace' && doc.metadata?.namespace !== 'switchyard')
        problems.push(`${file} ${doc.kind}: namespace must be switchyard`);
    }
    expect(problems).toEqual([]);
  });

  it('lists every manifest but the Secret example in kustomization.yaml', () => {
    const kustomization = loadYamlFile<{ resources: string[] }>(`${K8S_DIR}/kustomization.yaml`);
    const expected = files.filter((f) => f !== 'kustomization.yaml' && !f.includes('example'));
    expect([...kustomization.resources].sort()).toEqual(expected.sort());
  });

  it('probes the gateway’s real health routes on its port', () => {
    const port = apiContainer.ports.find((p: Manifest) => p.name === 'http');
    expect(port.containerPort).toBe(Number(appConfig.PORT));
    expect(apiContainer.livenessProbe.httpGet).toEqual({ path: '/health/live', port: 'http' });
    expect(apiContainer.readinessProbe.httpGet).toEqual({ path: '/health/ready', port: 'http' });
    expect(apiContainer.startupProbe.httpGet).toEqual({ path: '/health/live', port: 'http' });
    // Liveness must not restart pods for a dependency outage: never the readiness route.
    expect(apiContainer.livenessProbe.httpGet.path).not.toBe('/health/ready');
  });

  it('probes the worker on its own listener (WORKER_PORT)', () => {
    const container = worker.spec.template.spec.containers[0];
    const port = container.ports.find((p: Manifest) => p.name === 'http');
    expect(port.containerPort).toBe(Number(appConfig.WORKER_PORT));
    expect(container.livenessProbe.httpGet).toEqual({ path: '/health/live', port: 'http' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/health/ready', port: 'http' });
  });

  it('leaves time for a graceful shutdown: preStop + SHUTDOWN_GRACE_MS fit in the grace period', () => {
    const preStop = apiContainer.lifecycle.preStop.exec.command as string[];
    expect(preStop[0]).toBe('sleep');
    const budget = Number(preStop[1]) + Number(appConfig.SHUTDOWN_GRACE_MS) / 1000;
    expect(budget).toBeLessThan(api.spec.template.spec.terminationGracePeriodSeconds);
    expect(api.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
  });

  it('runs every container as non-root, without privilege escalation, with resources', () => {
    for (const d of [api, worker]) {
      const pod = d.spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
      expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        expect({ name: c.name, ...c.securityContext }).toMatchObject({
          name: c.name,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        expect(c.resources.requests).toEqual(
          expect.objectContaining({ cpu: expect.any(String), memory: expect.any(String) }),
        );
        expect(c.resources.limits.memory).toEqual(expect.any(String));
      }
    }
  });

  it('wires Service, HPA and PDB to the API pods only', () => {
    const podLabels = api.spec.template.metadata.labels;
    expect(podLabels).toMatchObject(api.spec.selector.matchLabels);
    expect(worker.spec.template.metadata.labels).toMatchObject(worker.spec.selector.matchLabels);
    const service = byKind('Service')[0];
    expect(podLabels).toMatchObject(service.spec.selector);
    expect(worker.spec.template.metadata.labels).not.toMatchObject(service.spec.selector);
    expect(service.spec.ports[0].targetPort).toBe('http');
    const pdb = byKind('PodDisruptionBudget')[0];
    expect(podLabels).toMatchObject(pdb.spec.selector.matchLabels);
    const hpa = byKind('HorizontalPodAutoscaler')[0];
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'switchyard' });
    expect(pdb.spec.minAvailable).toBeLessThan(hpa.spec.minReplicas);
  });

  it('starts entry points that exist: gateway, worker, CLI migrate', () => {
    const commands = [
      apiContainer.command,
      worker.spec.template.spec.containers[0].command,
      api.spec.template.spec.initContainers[0].command,
    ] as string[][];
    for (const command of commands) {
      expect(command[0]).toBe('node');
      expect(existsSync(path.join(ROOT, sourceOf(entryPoint(command))))).toBe(true);
    }
    // The gateway runs with the heap flags of `npm start` (docs/deployment.md).
    expect(apiContainer.command).toEqual(npmStartCommand());
    expect(api.spec.template.spec.initContainers[0].command.slice(2)).toEqual(['migrate']);
    expect(existsSync(path.join(ROOT, 'apps/cli/src/commands/migrate.command.ts'))).toBe(true);
  });

  it('sets only variables the config schema knows, and the ConfigMap loads as a production config', () => {
    const secret = byKind('Secret')[0].stringData as Record<string, string>;
    const unknown = [...Object.keys(appConfig), ...Object.keys(secret)].filter(
      (name) => !KNOWN_ENV.has(name),
    );
    expect(unknown).toEqual([]);
    const config = loadConfig({ ...appConfig, ...validSecrets } as NodeJS.ProcessEnv);
    expect(config.production).toBe(true);
    expect(config.http.port).toBe(8000);
  });

  it('ships a Secret example whose placeholders are refused at boot', () => {
    const secret = byKind('Secret')[0].stringData as Record<string, string>;
    const refusal = (env: Record<string, string>) => {
      try {
        loadConfig({ ...appConfig, ...env } as NodeJS.ProcessEnv);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigValidationError);
        return (err as Error).message;
      }
      throw new Error('the placeholder configuration was accepted');
    };
    expect(refusal(secret)).toContain('SESSION_ENCRYPTION_KEY');
    // Once the key is right, the short JWT_SECRET placeholder is refused as well.
    const withKey = { ...secret, SESSION_ENCRYPTION_KEY: validSecrets.SESSION_ENCRYPTION_KEY };
    expect(refusal(withKey)).toContain('JWT_SECRET');
  });

  it('mounts a providers file the gateway accepts', () => {
    const mountPath = apiContainer.volumeMounts.find((m: Manifest) => m.name === 'providers')
      .mountPath as string;
    expect(appConfig.PROVIDERS_FILE).toBe(`${mountPath}/providers.yaml`);
    const text = configMap('switchyard-providers').data['providers.yaml'] as string;
    const { file } = parseProvidersFile(text, 'configmap providers.yaml', () => undefined);
    expect(file.providers.length).toBeGreaterThan(0);
  });
});

describe('Dockerfile and .dockerignore', () => {
  const dockerfile = repoFile('Dockerfile');
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const lastStage = instructions.slice(
    instructions.map((l) => l.startsWith('FROM ')).lastIndexOf(true),
  );

  it('builds in stages and runs as a non-root user', () => {
    expect(instructions.filter((l) => /^FROM .+ AS \w+$/i.test(l)).length).toBeGreaterThanOrEqual(
      2,
    );
    const user = lastStage.filter((l) => l.startsWith('USER ')).pop();
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user?.split(/\s+/)[1]);
    expect(lastStage.some((l) => /npm (ci|install)(?!.*--omit=dev)/.test(l))).toBe(false);
  });

  it('probes liveness on the app’s port and starts the gateway entry point', () => {
    const healthcheck = lastStage.find((l) => l.startsWith('HEALTHCHECK')) as string;
    expect(healthcheck).toContain('/health/live');
    expect(healthcheck).toContain('process.env.PORT || 8000');
    expect(lastStage).toContain('EXPOSE 8000');
    const cmd = JSON.parse(
      (lastStage.find((l) => l.startsWith('CMD ')) as string).slice(4),
    ) as string[];
    expect(cmd[0]).toBe('node');
    expect(existsSync(path.join(ROOT, sourceOf(entryPoint(cmd))))).toBe(true);
    expect(cmd).toEqual(npmStartCommand());
  });

  it('copies everything `npm run build` reads into the build stage', () => {
    const scripts = (JSON.parse(repoFile('package.json')) as { scripts: Record<string, string> })
      .scripts;
    const buildStage = instructions.slice(0, instructions.indexOf(lastStage[0]));
    expect(buildStage.some((l) => /^RUN .*npm run build\b/.test(l))).toBe(true);
    const copied = new Set(
      buildStage
        .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
        .flatMap((l) => l.split(/\s+/).slice(1, -1)),
    );
    // The build script and the scripts it runs (`npm run build:x`), token by token: a token
    // naming a file or directory of the repository must have been copied into the stage.
    const seen = new Set<string>();
    const visit = (name: string) => {
      if (seen.has(name) || !scripts[name]) return;
      seen.add(name);
      for (const token of scripts[name].split(/[\s=]+/)) {
        if (/^build(:[\w-]+)?$/.test(token)) visit(token);
        const top = token.split('/')[0];
        if (top && /[./]/.test(token) && existsSync(path.join(ROOT, top)))
          expect({ token, copied: copied.has(top) }).toEqual({ token, copied: true });
      }
    };
    visit('build');
    expect(seen.size).toBeGreaterThan(0);
  });

  it('copies only paths that exist and that .dockerignore keeps in the context', () => {
    const ignored = repoFile('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const must of ['node_modules', '.git', '.env', 'dist', '.data'])
      expect(ignored).toContain(must);
    const sources = instructions
      .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
      .flatMap((l) => l.split(/\s+/).slice(1, -1));
    expect(sources.length).toBeGreaterThan(3);
    for (const source of sources) {
      expect({ source, exists: existsSync(path.join(ROOT, source)) }).toEqual({
        source,
        exists: true,
      });
      expect(ignored).not.toContain(source);
    }
  });
});

describe('docker-compose.yml', () => {
  const compose = loadYamlFile<Manifest>('docker-compose.yml');
  const services = compose.services as Record<string, Manifest>;

  it('runs api, worker, postgres, redis, prometheus, alertmanager and grafana', () => {
    expect(Object.keys(services).sort()).toEqual(
      ['alertmanager', 'api', 'grafana', 'postgres', 'prometheus', 'redis', 'worker'].sort(),
    );
    expect(services.worker.command).toEqual(['node', 'dist/apps/gateway/src/worker.js']);
    expect(services.api.ports[0]).toMatch(/:8000$/);
    expect(services.api.healthcheck.test.join(' ')).toContain('127.0.0.1:8000/health/ready');
    expect(services.worker.healthcheck.test.join(' ')).toContain(
      `127.0.0.1:${services.worker.environment.WORKER_PORT}/health/ready`,
    );
  });

  it('sets only variables the config schema knows, valid once the secrets are filled in', () => {
    const env = services.api.environment as Record<string, string>;
    expect(Object.keys(env).filter((name) => !KNOWN_ENV.has(name))).toEqual([]);
    // Resolve compose's ${VAR:-default} / ${VAR:?message} the way `docker compose` would with
    // an .env that holds only the required secrets.
    const dotenv: Record<string, string> = {
      POSTGRES_PASSWORD: 'pw',
      JWT_SECRET: validSecrets.JWT_SECRET,
      SESSION_ENCRYPTION_KEY: validSecrets.SESSION_ENCRYPTION_KEY,
    };
    const interpolate = (value: string) =>
      value.replace(
        /\$\{(\w+)(?:(:[-?])([^}]*))?\}/g,
        (_match, name: string, op?: string, word?: string) => {
          if (name in dotenv) return dotenv[name];
          if (op === ':?') throw new Error(`compose would stop: ${name}: ${word}`);
          return word ?? '';
        },
      );
    const resolved = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, interpolate(String(v))]),
    );
    const config = loadConfig(resolved as NodeJS.ProcessEnv);
    expect(config.production).toBe(true);
    expect(config.redis.url).toBe('redis://redis:6379');
  });

  it('mounts the monitoring configuration where each tool reads it', () => {
    const mounts = (name: string) =>
      (services[name].volumes as string[])
        .filter((v) => v.startsWith('./'))
        .map((v) => {
          const [host, container] = v.split(':');
          expect(existsSync(path.join(ROOT, host))).toBe(true);
          return { host: host.replace(/^\.\//, ''), container };
        });
    expect(mounts('prometheus')).toContainEqual({
      host: 'monitoring/prometheus',
      container: '/etc/prometheus',
    });
    expect(services.prometheus.command).toContain('--config.file=/etc/prometheus/prometheus.yml');
    expect(mounts('alertmanager')).toContainEqual({
      host: 'monitoring/alertmanager',
      container: '/etc/alertmanager',
    });
    expect(services.alertmanager.command).toContain(
      '--config.file=/etc/alertmanager/alertmanager.yml',
    );
    const grafana = mounts('grafana');
    expect(grafana).toContainEqual({
      host: 'monitoring/grafana/provisioning',
      container: '/etc/grafana/provisioning',
    });
    const provider = loadYamlFile<Manifest>(
      'monitoring/grafana/provisioning/dashboards/switchyard.yml',
    ).providers[0];
    expect(grafana).toContainEqual({
      host: 'monitoring/grafana/dashboards',
      container: provider.options.path,
    });
  });

  it('points Prometheus, Alertmanager and Grafana at the compose service names', () => {
    const prometheus = loadYamlFile<Manifest>('monitoring/prometheus/prometheus.yml');
    const job = prometheus.scrape_configs.find((j: Manifest) => j.job_name === 'switchyard');
    expect(job.dns_sd_configs).toEqual([
      expect.objectContaining({ names: ['api'], port: 8000 }),
      expect.objectContaining({
        names: ['worker'],
        port: Number(services.worker.environment.WORKER_PORT),
      }),
    ]);
    const [alertmanager] = prometheus.alerting.alertmanagers[0].static_configs[0].targets;
    expect(alertmanager).toBe('alertmanager:9093');
    expect(services.alertmanager.ports[0]).toMatch(/:9093$/);
    const datasource = loadYamlFile<Manifest>(
      'monitoring/grafana/provisioning/datasources/prometheus.yml',
    ).datasources[0];
    expect(datasource.url).toBe('http://prometheus:9090');
  });
});

describe('probe paths answer on a running gateway and worker', () => {
  let gw: TestGateway;
  let workerApp: WorkerApp | undefined;
  beforeAll(async () => {
    gw = await startGateway();
    const config = loadConfig({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
      DATABASE_URL: gw.databaseUrl,
      ...(testEnv.redisUrl ? { REDIS_URL: testEnv.redisUrl } : {}),
      REDIS_KEY_PREFIX: uniqueRedisPrefix(),
      JWT_SECRET: validSecrets.JWT_SECRET,
      SESSION_ENCRYPTION_KEY: validSecrets.SESSION_ENCRYPTION_KEY,
      WORKER_PORT: String(await freePort()),
    } as NodeJS.ProcessEnv);
    workerApp = await createWorker(config);
  });
  afterAll(async () => {
    await workerApp?.shutdown();
    await gw?.close();
  });

  it('answers 200 on the worker’s probe paths and serves its metrics', async () => {
    const container = worker.spec.template.spec.containers[0];
    for (const probe of [
      container.livenessProbe,
      container.readinessProbe,
      container.startupProbe,
    ]) {
      const res = await fetch(`${workerApp?.url}${probe.httpGet.path}`);
      expect({ path: probe.httpGet.path, status: res.status }).toEqual({
        path: probe.httpGet.path,
        status: 200,
      });
    }
    const metrics = await (await fetch(`${workerApp?.url}/metrics`)).text();
    expect(metrics).toContain('gateway_db_pool_connections');
  });

  it('answers other paths and methods on the worker in the error envelope', async () => {
    const answers = [
      [await fetch(`${workerApp?.url}/v1/models`), 404, 'not_found'],
      [await fetch(`${workerApp?.url}/metrics`, { method: 'POST' }), 405, 'method_not_allowed'],
    ] as const;
    for (const [res, status, code] of answers) {
      expect(res.status).toBe(status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
  });

  it('answers 200 on every path the manifests, the image and compose probe', async () => {
    const paths = new Set<string>([
      apiContainer.livenessProbe.httpGet.path,
      apiContainer.readinessProbe.httpGet.path,
      apiContainer.startupProbe.httpGet.path,
    ]);
    for (const text of [repoFile('Dockerfile'), repoFile('docker-compose.yml')])
      for (const match of text.matchAll(/127\.0\.0\.1:8000(\/health\/[a-z]+)/g))
        paths.add(match[1]);
    expect([...paths].sort()).toEqual(['/health/live', '/health/ready']);
    for (const probe of paths) {
      const res = await fetch(`${gw.url}${probe}`);
      expect({ probe, status: res.status }).toEqual({ probe, status: 200 });
    }
  });
});
