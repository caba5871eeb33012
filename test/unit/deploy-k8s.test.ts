import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { loadConfig, workerFamilies } from '../../shared/config/index.js';
import { ENV_FILE_NAMES } from '../../scripts/commands/keygen.js';
import { REPO_ROOT, SCHEMA_VARIABLES, at, isObject, k8sManifests, keygenValues, kindOf, objects, text, validateManifest, type Json, type JsonObject, type Manifest } from '../helpers/deploy.js';

/**
 * deploy/k8s read as data (no cluster here): every object valid against the Kubernetes schemas (kubernetes-models);
 * the security context on every pod template; probes; one Deployment per role with its disruption budget;
 * autoscalers; network policies; Secrets referenced, never inlined; and for every pod an environment that the
 * configuration schema accepts as production once the referenced Secrets hold what the README says.
 */

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const DEPLOY_SECTION = /\n## Deploy\n([\s\S]*?)(?=\n## )/.exec(README)?.[1] ?? '';
const manifests = k8sManifests();
const ofKind = (kind: string): Manifest[] => manifests.filter(({ doc }) => doc.kind === kind);
const named = (kind: string, name: string): JsonObject | undefined => ofKind(kind).find(({ doc }) => at(doc, 'metadata', 'name') === name)?.doc;
/** Deployments and Jobs: everything that runs a pod. */
const workloads = manifests.filter(({ doc }) => ['Deployment', 'Job'].includes(text(doc.kind)));
const podSpecOf = (doc: JsonObject): JsonObject => at(doc, 'spec', 'template', 'spec') as JsonObject;
const containersOf = (doc: JsonObject): JsonObject[] => [...objects(at(podSpecOf(doc), 'initContainers')), ...objects(at(podSpecOf(doc), 'containers'))];
const nameOf = (doc: JsonObject): string => text(at(doc, 'metadata', 'name'));
const labelsOf = (doc: JsonObject): JsonObject => (at(doc, 'spec', 'template', 'metadata', 'labels') ?? {}) as JsonObject;

/** What the README tells the operator to put into the Secret botserver-connections, with example values. */
const CONNECTIONS: Record<string, string> = {
  DATABASE_URL: 'postgres://botserver:password@postgresql:5432/botserver',
  REDIS_URL: 'redis://:password@redis:6379',
  AWS_ACCESS_KEY_ID: 'botserver',
  AWS_SECRET_ACCESS_KEY: 'secret-access-key',
  ZITADEL_DOMAIN: 'https://auth.example.com',
  ZITADEL_CLIENT_ID: 'client-id',
  ZITADEL_CLIENT_SECRET: 'client-secret',
  LLM_API_KEY: 'llm-key',
  QDRANT_API_KEY: 'qdrant-key',
};
const SECRETS: Record<string, Map<string, string>> = { 'botserver-keys': keygenValues(), 'botserver-connections': new Map(Object.entries(CONNECTIONS)) };
const configMap = (named('ConfigMap', 'botserver-config')?.data ?? {}) as Record<string, string>;

/** The container's environment as the kubelet would build it from the ConfigMap, literal values and Secret references. */
function environmentOf(container: JsonObject): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of objects(container.envFrom)) {
    const name = at(source, 'configMapRef', 'name');
    if (name !== 'botserver-config') throw new Error(`envFrom ${JSON.stringify(source)}: only the ConfigMap botserver-config`);
    Object.assign(env, configMap);
  }
  for (const entry of objects(container.env)) {
    const name = text(entry.name);
    if (typeof entry.value === 'string') env[name] = entry.value;
    const ref = at(entry, 'valueFrom', 'secretKeyRef');
    if (isObject(ref)) {
      const value = SECRETS[text(ref.name)]?.get(text(ref.key));
      if (value !== undefined) env[name] = value;
      else if (ref.optional !== true) throw new Error(`${name}: Secret ${text(ref.name)} has no key ${text(ref.key)}`);
    }
  }
  return env;
}

describe('deploy/k8s', () => {
  it('every object is valid against the Kubernetes schema of its kind', () => {
    expect(manifests.length).to.be.greaterThan(10);
    for (const { file, doc } of manifests) {
      try {
        validateManifest(doc);
      } catch (error) {
        throw new Error(`${file}: ${kindOf(doc)} ${nameOf(doc)}: ${(error as Error).message}`, { cause: error });
      }
    }
  });

  it('every pod template carries the security context of the issue, in the pod and in every container', () => {
    expect(workloads.length).to.equal(1 + workerFamilies.length + 1); // api, the families, migrate
    for (const { doc } of workloads) {
      const pod = podSpecOf(doc);
      const where = nameOf(doc);
      expect(at(pod, 'securityContext'), where).to.deep.include({ runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 });
      expect(at(pod, 'securityContext', 'seccompProfile'), where).to.deep.equal({ type: 'RuntimeDefault' });
      expect(pod.hostNetwork ?? false, where).to.equal(false);
      expect(pod.hostPID ?? false, where).to.equal(false);
      expect(pod.automountServiceAccountToken, `${where}: no service-account token`).to.equal(false);
      for (const container of containersOf(doc)) {
        const context = container.securityContext as JsonObject;
        const label = `${where}/${text(container.name)}`;
        expect(context, label).to.deep.include({ runAsNonRoot: true, runAsUser: 1000, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
        expect(context.privileged ?? false, label).to.equal(false);
        expect(at(context, 'capabilities'), label).to.deep.equal({ drop: ['ALL'] });
        expect(at(context, 'seccompProfile'), label).to.deep.equal({ type: 'RuntimeDefault' });
        expect(text(container.image), label).to.match(/^[^:]+:(?!latest$)[\w.-]+$/);
        const tmp = objects(container.volumeMounts).find((mount) => mount.mountPath === '/tmp');
        expect(tmp, `${label}: a writable /tmp beside the read-only root`).to.not.equal(undefined);
      }
    }
  });

  it('runs one Deployment per role: the API and each worker family, with its arguments', () => {
    const roles = ofKind('Deployment').map(({ doc }) => (at(containersOf(doc)[0], 'args') as string[]).join(' '));
    expect([...roles].sort()).to.deep.equal(['api', ...workerFamilies.map((family) => `worker ${family}`)].sort());
    expect(at(containersOf(named('Job', 'botserver-migrate') as JsonObject)[0], 'args')).to.deep.equal(['migrate']);
    expect(at(named('Deployment', 'botserver-api'), 'spec', 'replicas')).to.be.at.least(2);
  });

  it('probes liveness on /healthz and readiness on /readyz, workers on BOTSERVER_HEALTH_PORT', () => {
    for (const { doc } of ofKind('Deployment')) {
      const container = containersOf(doc)[0] as JsonObject;
      const isApi = nameOf(doc) === 'botserver-api';
      const port = objects(container.ports)[0] as JsonObject;
      expect(port.containerPort, nameOf(doc)).to.equal(Number(isApi ? configMap.BOTSERVER_PORT : configMap.BOTSERVER_HEALTH_PORT));
      expect(at(container, 'livenessProbe', 'httpGet'), nameOf(doc)).to.deep.equal({ path: '/healthz', port: port.name });
      expect(at(container, 'readinessProbe', 'httpGet'), nameOf(doc)).to.deep.equal({ path: '/readyz', port: port.name });
      expect(at(podSpecOf(doc), 'terminationGracePeriodSeconds'), `${nameOf(doc)}: time to drain`).to.be.at.least(30);
    }
    expect(at(containersOf(named('Deployment', 'botserver-api') as JsonObject)[0], 'lifecycle', 'preStop', 'sleep', 'seconds')).to.be.greaterThan(0);
  });

  it('names only variables the configuration schema knows, and inlines no secret', () => {
    expect(ofKind('Secret'), 'no Secret object in the repository').to.deep.equal([]);
    for (const name of Object.keys(configMap)) expect(SCHEMA_VARIABLES.has(name), `ConfigMap: ${name}`).to.equal(true);
    for (const name of Object.keys(configMap)) expect(name, 'a secret in the ConfigMap').to.not.match(/SECRET|PASSWORD|TOKEN|_KEY$|DATABASE_URL|REDIS_URL/);
    for (const { doc } of workloads) {
      for (const container of containersOf(doc)) {
        for (const entry of objects(container.env)) {
          const name = text(entry.name);
          expect(SCHEMA_VARIABLES.has(name), `${nameOf(doc)}: ${name}`).to.equal(true);
          expect(entry.value, `${nameOf(doc)}: ${name} comes from a Secret`).to.equal(undefined);
          const ref = at(entry, 'valueFrom', 'secretKeyRef') as JsonObject;
          expect(ref.key, `${nameOf(doc)}: ${name}`).to.equal(name);
          expect(Object.keys(SECRETS), `${nameOf(doc)}: ${name}`).to.include(text(ref.name));
        }
      }
    }
  });

  it('references only Secret keys that keygen writes or the README tells the operator to provide', () => {
    const referenced = new Map<string, Set<string>>();
    for (const { doc } of workloads) {
      for (const container of containersOf(doc)) {
        for (const entry of objects(container.env)) {
          const ref = at(entry, 'valueFrom', 'secretKeyRef') as JsonObject;
          const keys = referenced.get(text(ref.name)) ?? new Set<string>();
          keys.add(text(ref.key));
          referenced.set(text(ref.name), keys);
        }
      }
    }
    for (const key of referenced.get('botserver-keys') ?? []) expect(ENV_FILE_NAMES, key).to.include(key);
    for (const key of referenced.get('botserver-connections') ?? []) expect(DEPLOY_SECTION, `README names ${key} for botserver-connections`).to.include(`--from-literal=${key}=`);
    expect(DEPLOY_SECTION).to.include('create secret generic botserver-keys --from-env-file=');
  });

  it('gives every pod a configuration production accepts (keys, JWT key, trusted proxy, Redis, PostgreSQL, queue prefix)', () => {
    for (const { doc } of workloads) {
      const env = environmentOf(containersOf(doc)[0] as JsonObject);
      const config = loadConfig(env);
      expect(config.production, nameOf(doc)).to.equal(true);
      expect(config.databaseUrl, nameOf(doc)).to.equal(CONNECTIONS.DATABASE_URL);
      expect(config.redisUrl, nameOf(doc)).to.equal(CONNECTIONS.REDIS_URL);
      expect(config.queuePrefix, nameOf(doc)).to.match(/^\{[^}]+\}$/);
      expect(config.host, nameOf(doc)).to.equal('0.0.0.0');
      expect(config.oidc === undefined, `${nameOf(doc)}: OIDC only in the API`).to.equal(nameOf(doc) !== 'botserver-api');
    }
  });

  it('mounts the shared ReadWriteMany data volume where uploads are staged and read (API, e-mail, files, embed)', () => {
    expect(at(named('PersistentVolumeClaim', 'botserver-data'), 'spec', 'accessModes')).to.deep.equal(['ReadWriteMany']);
    for (const name of ['botserver-api', 'botserver-worker-email', 'botserver-worker-files', 'botserver-worker-embed']) {
      const container = containersOf(named('Deployment', name) as JsonObject)[0] as JsonObject;
      expect(objects(container.volumeMounts).map((mount) => mount.mountPath), name).to.include(configMap.BOTSERVER_DATA_DIR);
    }
  });

  it('has a PodDisruptionBudget for every Deployment, selecting its pods', () => {
    for (const { doc } of ofKind('Deployment')) {
      const labels = labelsOf(doc);
      const budgets = ofKind('PodDisruptionBudget').filter(({ doc: budget }) => {
        const selector = (at(budget, 'spec', 'selector', 'matchLabels') ?? {}) as JsonObject;
        return Object.entries(selector).every(([key, value]) => labels[key] === value) && Object.keys(selector).length > 0;
      });
      expect(budgets, nameOf(doc)).to.have.length(1);
      const replicas = Number(at(doc, 'spec', 'replicas') ?? 1);
      const budget = budgets[0]?.doc;
      // A budget that allows no disruption at all would block every node drain.
      if (replicas === 1) expect(at(budget, 'spec', 'maxUnavailable'), nameOf(doc)).to.equal(1);
      else expect(at(budget, 'spec', 'minAvailable'), nameOf(doc)).to.be.lessThan(replicas);
    }
  });

  it('scales the API on CPU and the reply workers on the bot-reply backlog served by the documented prometheus-adapter rule', () => {
    const api = named('HorizontalPodAutoscaler', 'botserver-api');
    expect(at(api, 'spec', 'scaleTargetRef', 'name')).to.equal('botserver-api');
    expect(at(api, 'spec', 'metrics', 0)).to.deep.include({ type: 'Resource' });
    expect(at(api, 'spec', 'metrics', 0, 'resource', 'name')).to.equal('cpu');
    const reply = named('HorizontalPodAutoscaler', 'botserver-worker-reply');
    expect(at(reply, 'spec', 'scaleTargetRef', 'name')).to.equal('botserver-worker-reply');
    const metric = at(reply, 'spec', 'metrics', 0, 'external', 'metric') as JsonObject;
    expect(at(metric, 'selector', 'matchLabels')).to.deep.equal({ queue: 'bot-reply' });

    const adapterConfig = parse(text(at(named('ConfigMap', 'adapter-config'), 'data', 'config.yaml'))) as JsonObject;
    const rule = objects(adapterConfig.externalRules).find((candidate) => at(candidate, 'name', 'as') === metric.name);
    expect(rule, `a rule that serves ${text(metric.name)}`).to.not.equal(undefined);
    expect(text(rule?.seriesQuery)).to.match(/^botserver_queue_jobs\{.*state="waiting"/);
    // The gauge the rule reads is the one the API exports.
    expect(readFileSync(join(REPO_ROOT, 'api', 'http', 'metrics.ts'), 'utf8')).to.match(/name: 'botserver_queue_jobs'[\s\S]{0,200}labelNames: \['queue', 'state'\]/);
  });

  it('denies all traffic by default, lets into the API only the ingress controller (and Prometheus), and nothing into workers', () => {
    const policies = ofKind('NetworkPolicy').map(({ doc }) => doc);
    const denyAll = policies.find((policy) => JSON.stringify(at(policy, 'spec', 'podSelector')) === '{}');
    expect(at(denyAll, 'spec', 'policyTypes')).to.have.members(['Ingress', 'Egress']);
    expect(at(denyAll, 'spec', 'ingress')).to.equal(undefined);
    expect(at(denyAll, 'spec', 'egress')).to.equal(undefined);
    const ingressPolicies = policies.filter((policy) => Array.isArray(at(policy, 'spec', 'ingress')));
    for (const policy of ingressPolicies) {
      expect(at(policy, 'spec', 'podSelector', 'matchLabels', 'app.kubernetes.io/component'), nameOf(policy)).to.equal('api');
      for (const rule of objects(at(policy, 'spec', 'ingress'))) {
        const namespaces = objects(rule.from).map((peer) => at(peer, 'namespaceSelector', 'matchLabels', 'kubernetes.io/metadata.name'));
        expect(namespaces, nameOf(policy)).to.satisfy((list: Json[]) => list.every((namespace) => namespace === 'ingress-nginx' || namespace === 'monitoring'));
        expect(objects(rule.from).every((peer) => peer.ipBlock === undefined), nameOf(policy)).to.equal(true);
        expect(objects(rule.ports).map((port) => port.port), nameOf(policy)).to.deep.equal([Number(configMap.BOTSERVER_PORT)]);
      }
    }
  });

  it('lets each role out only to its services; public egress only on the LLM/embeddings (443) and e-mail ports, never to private ranges', () => {
    const policies = ofKind('NetworkPolicy').map(({ doc }) => doc);
    const publicPorts: Record<string, number[]> = { 'worker-reply': [443], 'worker-embed': [443], 'worker-email': [993, 143, 465, 587, 25] };
    for (const policy of policies) {
      for (const rule of objects(at(policy, 'spec', 'egress'))) {
        expect(objects(rule.ports).length, `${nameOf(policy)}: every egress rule names its ports`).to.be.greaterThan(0);
        for (const peer of objects(rule.to)) {
          if (peer.ipBlock === undefined) continue;
          const component = text(at(policy, 'spec', 'podSelector', 'matchLabels', 'app.kubernetes.io/component'));
          expect(Object.keys(publicPorts), `${nameOf(policy)}: public egress`).to.include(component);
          expect(objects(rule.ports).map((port) => port.port), nameOf(policy)).to.have.members(publicPorts[component] ?? []);
          expect(at(peer, 'ipBlock', 'except'), nameOf(policy)).to.include.members(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16']);
        }
      }
    }
    for (const component of Object.keys(publicPorts)) {
      expect(policies.some((policy) => at(policy, 'spec', 'podSelector', 'matchLabels', 'app.kubernetes.io/component') === component), component).to.equal(true);
    }
  });

  it('serves the API through its Service and a TLS Ingress whose Secret is referenced, not inlined', () => {
    const service = named('Service', 'botserver-api');
    expect(at(service, 'spec', 'selector')).to.deep.equal(labelsOf(named('Deployment', 'botserver-api') as JsonObject));
    const ingress = named('Ingress', 'botserver');
    expect(at(ingress, 'spec', 'tls', 0, 'secretName')).to.be.a('string');
    expect(at(ingress, 'spec', 'rules', 0, 'http', 'paths', 0, 'backend', 'service', 'name')).to.equal('botserver-api');
    expect(at(named('Namespace', 'botserver'), 'metadata', 'labels', 'pod-security.kubernetes.io/enforce')).to.equal('restricted');
  });
});
