import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { GVISOR_GO_VERSION } from '../../activities/sandbox/locate';
import { shardMapSchema } from '../../core/shard-map';
import { ensureHelm } from '../../infra/provision/helm';
import { ROOT } from '../../infra/root';
import { chartModels } from '../helpers/k8s-models';

// The Helm chart (issue 19, ADR 0033), offline: rendered by a real `helm` (built from the Go module
// proxy) for the three value sets in infra/helm/dotgit/ci, every manifest validated against the
// Kubernetes API schemas and the CRD schemas of KEDA, CloudNativePG and the Prometheus operator
// (kubernetes-models), then checked against the chart's policies.

const execFileAsync = promisify(execFile);
const CHART = path.join(ROOT, 'infra', 'helm', 'dotgit');
const VALUE_SETS = ['minimal', 'ha', 'large'] as const;
type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any; [k: string]: any };

let helm: string;
const rendered = new Map<string, Manifest[]>();

async function render(args: string[]): Promise<Manifest[]> {
  const { stdout } = await execFileAsync(helm, ['template', 'dotgit', CHART, '--namespace', 'dotgit', '--kube-version', '1.31.0', ...args], { maxBuffer: 64 * 1024 * 1024 });
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

async function renderError(args: string[]): Promise<string> {
  const err = await render(args).then(() => undefined, (e: Error & { stderr?: string }) => e);
  expect(err).toBeDefined();
  return String(err?.stderr ?? err?.message);
}

const of = (set: string) => rendered.get(set)!;
const byKind = (set: string, kind: string) => of(set).filter((m) => m.kind === kind);
const named = (set: string, kind: string, suffix: string) => {
  const m = of(set).find((x) => x.kind === kind && x.metadata.name.endsWith(suffix));
  if (!m) throw new Error(`${set}: no ${kind} named *${suffix}`);
  return m;
};
const workloads = (set: string) => of(set).filter((m) => ['Deployment', 'StatefulSet', 'Job'].includes(m.kind));
const podSpec = (w: Manifest) => w.spec.template.spec;
const envOf = (container: any, name: string) => container.env?.find((e: any) => e.name === name);

beforeAll(async () => {
  helm = await ensureHelm({ toolsDir: path.join(ROOT, '.tools') });
  for (const set of VALUE_SETS) rendered.set(set, await render(['-f', path.join(CHART, 'ci', `${set}-values.yaml`)]));
}, 15 * 60_000);

test('helm lint passes for every value set', async () => {
  for (const set of VALUE_SETS) {
    const { stdout } = await execFileAsync(helm, ['lint', CHART, '--kube-version', '1.31.0', '-f', path.join(CHART, 'ci', `${set}-values.yaml`)]);
    expect(stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

test('every rendered manifest validates against its Kubernetes or CRD schema', () => {
  for (const set of VALUE_SETS) {
    expect(of(set).length).toBeGreaterThan(15);
    for (const m of of(set)) {
      const Model = chartModels[`${m.apiVersion}/${m.kind}`];
      expect([set, m.kind, m.metadata.name, Model ? 'known' : 'no schema']).toEqual([set, m.kind, m.metadata.name, 'known']);
      expect(() => new Model(m).validate()).not.toThrow();
    }
  }
  // The validation is real: a wrong type in a rendered manifest is refused.
  const broken = structuredClone(named('minimal', 'Deployment', '-gateway'));
  broken.spec.template.spec.containers[0].ports[0].containerPort = 'http';
  expect(() => new chartModels['apps/v1/Deployment'](broken).validate()).toThrow(/containerPort must be integer/);
});

test('every container runs as non-root with a read-only root filesystem, requests and limits', () => {
  for (const set of VALUE_SETS) {
    for (const w of workloads(set)) {
      const spec = podSpec(w);
      expect([w.metadata.name, spec.securityContext?.runAsNonRoot, spec.automountServiceAccountToken]).toEqual([w.metadata.name, true, false]);
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        const where = `${set} ${w.metadata.name}/${c.name}`;
        expect([where, c.securityContext?.readOnlyRootFilesystem, c.securityContext?.allowPrivilegeEscalation]).toEqual([where, true, false]);
        for (const kind of ['requests', 'limits']) for (const r of ['cpu', 'memory']) expect([where, kind, r, c.resources?.[kind]?.[r] !== undefined]).toEqual([where, kind, r, true]);
      }
    }
  }
});

test('sandbox workers: gVisor RuntimeClass, no service-account token, KEDA on the sandbox queue from 0 to 500', () => {
  for (const set of VALUE_SETS) {
    const sandbox = named(set, 'Deployment', '-sandbox');
    expect(podSpec(sandbox).runtimeClassName).toBe('gvisor');
    expect(podSpec(sandbox).automountServiceAccountToken).toBe(false);
    expect(envOf(podSpec(sandbox).containers[0], 'DOTGIT_WORKER_ROLES').value).toBe('sandbox');
    expect(named(set, 'RuntimeClass', 'gvisor').handler).toBe('runsc');
  }
  for (const set of ['ha', 'large']) {
    const so = named(set, 'ScaledObject', '-sandbox');
    expect(so.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: named(set, 'Deployment', '-sandbox').metadata.name });
    expect([so.spec.minReplicaCount, so.spec.maxReplicaCount]).toEqual([0, 500]);
    expect(so.spec.triggers[0]).toEqual({ type: 'temporal', metadata: expect.objectContaining({ taskQueue: 'dotgit-sandbox', namespace: 'dotgit', queueTypes: 'activity', targetQueueSize: '8' }) });
    // With a Prometheus address, a second trigger on backlog + busy slots (docs/scaling.md).
    expect(so.spec.triggers.slice(1)).toEqual(
      set === 'ha' ? [{ type: 'prometheus', metadata: expect.objectContaining({ threshold: '8', query: expect.stringContaining('dotgit_worker_slots_used{queue=~"dotgit-sandbox(@.*)?",kind="activity"}') }) }] : [],
    );
    // KEDA owns the replica count.
    expect(named(set, 'Deployment', '-sandbox').spec.replicas).toBeUndefined();
  }
  expect(byKind('minimal', 'ScaledObject')).toEqual([]);
});

test('every Deployment and StatefulSet has a PodDisruptionBudget selecting its pods', () => {
  for (const set of VALUE_SETS) {
    const pdbs = byKind(set, 'PodDisruptionBudget');
    for (const w of of(set).filter((m) => m.kind === 'Deployment' || m.kind === 'StatefulSet')) {
      const labels = w.spec.template.metadata.labels as Record<string, string>;
      const covering = pdbs.filter((p) => Object.entries(p.spec.selector.matchLabels as Record<string, string>).every(([k, v]) => labels[k] === v));
      expect([set, w.metadata.name, covering.length]).toEqual([set, w.metadata.name, 1]);
    }
  }
});

test('network policies: deny by default, only the gateway open to the outside, sandbox egress never to the api or the other roles', () => {
  for (const set of VALUE_SETS) {
    const policies = byKind(set, 'NetworkPolicy');
    const deny = policies.find((p) => p.metadata.name.endsWith('-default-deny'))!;
    expect(deny.spec).toEqual({ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'dotgit', 'app.kubernetes.io/instance': 'dotgit' } }, policyTypes: ['Ingress', 'Egress'] });
    // Ingress from anywhere (a rule without `from`) only on the gateway's port and the metrics scrapes' namespace.
    for (const p of policies) {
      for (const rule of p.spec.ingress ?? []) {
        if (!rule.from) expect([p.metadata.name, p.spec.podSelector.matchLabels?.['app.kubernetes.io/component']]).toEqual([p.metadata.name, 'gateway']);
      }
    }
    const sandbox = policies.find((p) => p.metadata.name === 'dotgit-sandbox')!;
    expect(sandbox.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    const peers = (sandbox.spec.egress as any[]).flatMap((r) => r.to ?? []);
    for (const peer of peers) {
      const component = peer.podSelector?.matchLabels?.['app.kubernetes.io/component'];
      if (peer.podSelector) expect(component).toBe('git');
      if (peer.ipBlock) expect(peer.ipBlock.cidr).not.toBe('0.0.0.0/0');
      if (peer.namespaceSelector) expect(peer.namespaceSelector.matchLabels).toEqual({ 'kubernetes.io/metadata.name': 'temporal' });
    }
    // Rules to addresses are port-limited (database ports, HTTPS to the object store), never open.
    for (const rule of sandbox.spec.egress as any[]) if (rule.to?.some((p: any) => p.ipBlock)) expect(rule.ports?.length).toBeGreaterThan(0);
    expect(JSON.stringify(sandbox.spec.egress)).not.toMatch(/"api"|8081/);
  }
  const ingress = named('ha', 'Ingress', 'dotgit');
  expect(ingress.spec.rules[0].http.paths.map((p: any) => p.backend.service.name)).toEqual([named('ha', 'Service', '-gateway').metadata.name]);
  expect(ingress.spec.tls[0].secretName).toBe('dotgit-tls');
});

test('git storage nodes: a StatefulSet with a volume each, a headless Service, node URLs for the gateway and api', () => {
  const git = named('large', 'StatefulSet', '-git');
  expect(git.spec.replicas).toBe(8);
  expect(git.spec.volumeClaimTemplates[0].metadata.name).toBe('repos');
  const headless = named('large', 'Service', '-git');
  expect(headless.spec.clusterIP).toBe('None');
  expect(git.spec.serviceName).toBe(headless.metadata.name);
  const [server, storage] = podSpec(git).containers;
  expect(envOf(server, 'DOTGIT_NODE_URL').value).toBe('http://$(POD_NAME).dotgit-git.dotgit.svc:8082');
  expect(envOf(storage, 'DOTGIT_WORKER_ROLES').value).toBe('storage');
  const upstreams = envOf(podSpec(named('large', 'Deployment', '-gateway')).containers[0], 'DOTGIT_GIT_UPSTREAMS').value.split(',');
  expect(upstreams).toHaveLength(8);
  expect(upstreams[7]).toBe('http://dotgit-git-7.dotgit-git.dotgit.svc:8082');
});

test('databases: URLs only from secrets; the large layout\'s shard map is one the platform accepts', () => {
  for (const set of VALUE_SETS) {
    for (const w of workloads(set)) {
      for (const c of podSpec(w).containers) {
        expect(envOf(c, 'DATABASE_URL').value).toBe('$(DOTGIT_DB_URL_0)');
        expect(envOf(c, 'DOTGIT_DB_URL_0').valueFrom.secretKeyRef).toBeDefined();
      }
    }
  }
  const clusters = byKind('large', 'Cluster');
  expect(clusters.map((c) => c.metadata.name)).toEqual(['dotgit-pg-s0', 'dotgit-pg-s1', 'dotgit-pg-s2', 'dotgit-pg-s3']);
  for (const c of clusters) expect([c.spec.instances, c.spec.postgresql.synchronous.number]).toEqual([4, 1]);
  const api = podSpec(named('large', 'Deployment', '-api')).containers[0];
  expect(envOf(api, 'DOTGIT_DB_URL_2').valueFrom.secretKeyRef).toEqual({ name: 'dotgit-pg-s2-app', key: 'uri' });
  // Kubernetes expands $(VAR) in the pod; the platform's own schema then reads the map.
  const map = JSON.parse(envOf(api, 'DOTGIT_SHARD_MAP').value.replace(/\$\(DOTGIT_DB_URL_(\d)\)/g, 'postgres://db$1/dotgit'));
  expect(shardMapSchema.parse(map)).toEqual({ databases: { s1: 'postgres://db1/dotgit', s2: 'postgres://db2/dotgit', s3: 'postgres://db3/dotgit' }, shards: ['global', 'global', 's1', 's1', 's2', 's2', 's3', 's3'] });
  expect(envOf(podSpec(named('minimal', 'Deployment', '-api')).containers[0], 'DOTGIT_SHARD_MAP')).toBeUndefined();
});

test('upgrades: expand migrations before the rollout, contract only when asked, after it; drains match the grace periods', async () => {
  const jobs = byKind('minimal', 'Job');
  expect(jobs.map((j) => [j.metadata.name, j.metadata.annotations?.['helm.sh/hook'], podSpec(j).containers[0].args])).toEqual([
    ['dotgit-migrate-expand', 'pre-install,pre-upgrade', ['migrate', '--phase=expand']],
  ]);
  const withContract = await render(['-f', path.join(CHART, 'ci', 'minimal-values.yaml'), '--set', 'migrations.contract=true']);
  const contract = withContract.find((m) => m.kind === 'Job' && m.metadata.name === 'dotgit-migrate-contract')!;
  expect(contract.metadata.annotations?.['helm.sh/hook']).toBe('post-upgrade');
  expect(podSpec(contract).containers[0].args).toEqual(['migrate', '--phase=contract']);
  const sandbox = named('ha', 'Deployment', '-sandbox');
  const drain = Number(envOf(podSpec(sandbox).containers[0], 'DOTGIT_WORKER_DRAIN_SECONDS').value);
  expect(podSpec(sandbox).terminationGracePeriodSeconds).toBeGreaterThan(drain);
  const gateway = named('ha', 'Deployment', '-gateway');
  expect(podSpec(gateway).terminationGracePeriodSeconds).toBeGreaterThan(Number(envOf(podSpec(gateway).containers[0], 'DOTGIT_DRAIN_SECONDS').value));
  for (const w of of('ha').filter((m) => m.kind === 'Deployment')) expect([w.metadata.name, w.spec.strategy.rollingUpdate.maxUnavailable]).toEqual([w.metadata.name, 0]);
});

test('monitoring: the alert rules and dashboards of --observability, unchanged, as operator resources', () => {
  const rule = named('ha', 'PrometheusRule', 'dotgit');
  const alerts = parseYaml(readFileSync(path.join(ROOT, 'infra', 'observability', 'alerts.yml'), 'utf8'));
  expect(rule.spec.groups).toEqual(alerts.groups);
  const dashboards = readdirSync(path.join(ROOT, 'infra', 'observability', 'dashboards')).filter((f) => f.endsWith('.json'));
  const maps = byKind('ha', 'ConfigMap').filter((c) => c.metadata.labels?.grafana_dashboard === '1');
  expect(maps.map((m) => Object.keys(m.data)[0]).sort()).toEqual(dashboards.sort());
  for (const m of maps) expect(() => JSON.parse(Object.values(m.data)[0] as string)).not.toThrow();
  expect(byKind('ha', 'ServiceMonitor')).toHaveLength(1);
  expect(byKind('minimal', 'PrometheusRule')).toEqual([]);
});

test('bad values stop the render with a message that says what is wrong', async () => {
  expect(await renderError(['--set', 'networkPolicies.sandboxDatabaseCidrs=null'])).toMatch(/networkPolicies\.sandboxDatabaseCidrs is empty/);
  expect(await renderError(['-f', path.join(CHART, 'ci', 'large-values.yaml'), '--set', 'postgres.shardMap={s0,s1}'])).toMatch(/postgres\.shardMap must place all 8 logical shards, it lists 2/);
});

test('the image: every role the chart runs is one the entry point knows, and the Dockerfile pins the gVisor the platform builds', async () => {
  const roles = new Set(VALUE_SETS.flatMap((set) => workloads(set).flatMap((w) => podSpec(w).containers.map((c: any) => c.args[0] as string))));
  expect([...roles].sort()).toEqual(['api', 'gateway', 'git-server', 'migrate', 'worker']);
  const entrypoint = path.join(ROOT, 'infra', 'image', 'entrypoint.sh');
  for (const role of roles) {
    // With an empty app dir every known role gets past the role check and stops at the missing build.
    const err = await execFileAsync('sh', [entrypoint, role], { env: { PATH: process.env.PATH, DOTGIT_APP_DIR: '/nonexistent' } }).then(() => undefined, (e: Error & { code?: number; stderr?: string }) => e);
    expect([role, err?.code, err?.stderr]).toEqual([role, 2, expect.stringContaining('was built without')]);
  }
  const unknown = await execFileAsync('sh', [entrypoint, 'shell']).then(() => undefined, (e: Error & { code?: number; stderr?: string }) => e);
  expect([unknown?.code, unknown?.stderr]).toEqual([2, expect.stringContaining("usage: entrypoint.sh gateway|api|git-server|worker|migrate [args]   (got: 'shell')")]);
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  expect(dockerfile).toContain(`ARG GVISOR_VERSION=${GVISOR_GO_VERSION}`);
  expect(dockerfile).toMatch(/^USER 10001:10001$/m);
});
