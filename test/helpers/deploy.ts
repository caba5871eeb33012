/**
 * Reading the deployment files without a container engine: the Dockerfile (dockerfile-ast), the compose file and the
 * Kubernetes manifests (yaml, validated with kubernetes-models), compose's variable interpolation, and the values a
 * `botserver keygen --out` file would hold.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigMap, Namespace, PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { envSchema } from '../../shared/config/index.js';
import { envFileLines } from '../../scripts/commands/keygen.js';
import { REPO_ROOT } from './process.js';

export { REPO_ROOT };
export const DEPLOY_DIR = join(REPO_ROOT, 'deploy');
export const K8S_DIR = join(DEPLOY_DIR, 'k8s');

/** Every variable the configuration schema knows. */
export const SCHEMA_VARIABLES: ReadonlySet<string> = new Set(Object.keys(envSchema.shape));

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A scalar as text (numbers and booleans as YAML wrote them); anything else as JSON, so that a mistake shows. */
export function text(value: Json | undefined): string {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every YAML document of a file, as plain data; YAML errors (duplicate keys included) throw. Merge keys (`<<`) are resolved. */
export function readYamlDocuments(path: string): Json[] {
  return parseAllDocuments(readFileSync(path, 'utf8'), { merge: true, uniqueKeys: true }).map((document) => {
    if (document.errors.length > 0) throw new Error(`${path}: ${document.errors.map((error) => error.message).join('; ')}`);
    return document.toJS({ maxAliasCount: 100 }) as Json;
  });
}

/** The values `botserver keygen --out FILE --secret NAME...` writes, by name. */
export function keygenValues(secretNames: readonly string[] = []): Map<string, string> {
  return new Map(
    envFileLines(secretNames).map((line) => {
      const at = line.indexOf('=');
      return [line.slice(0, at), line.slice(at + 1)];
    }),
  );
}

/**
 * Compose's interpolation of one string: `$$`, `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
 * `${NAME:?error}`, `${NAME?error}` (the forms docker compose documents). A required variable that is missing throws.
 */
export function interpolate(text: string, variables: ReadonlyMap<string, string>, used: Set<string> = new Set()): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (match, braced?: string, operator?: string, argument?: string, bare?: string) => {
    if (match === '$$') return '$';
    const name = braced ?? bare ?? '';
    used.add(name);
    const value = variables.get(name);
    const unsetOrEmpty = value === undefined || (operator?.startsWith(':') === true && value === '');
    if (operator === ':-' || operator === '-') return unsetOrEmpty ? interpolate(argument ?? '', variables, used) : (value ?? '');
    if (operator === ':?' || operator === '?') {
      if (unsetOrEmpty) throw new Error(`compose needs ${name}: ${argument ?? ''}`);
      return value ?? '';
    }
    return value ?? '';
  });
}

/** Interpolates every string of a parsed compose file (keys stay as written). */
export function interpolateAll(value: Json, variables: ReadonlyMap<string, string>, used: Set<string> = new Set()): Json {
  if (typeof value === 'string') return interpolate(value, variables, used);
  if (Array.isArray(value)) return value.map((item) => interpolateAll(item, variables, used));
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolateAll(item, variables, used)]));
  return value;
}

export interface Manifest {
  file: string;
  doc: JsonObject;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(entry.name) ? [path] : [];
  });
}

/** Every Kubernetes object under deploy/k8s (all folders), with the file it comes from. */
export function k8sManifests(): Manifest[] {
  return yamlFiles(K8S_DIR).flatMap((path) =>
    readYamlDocuments(path).map((doc) => {
      if (!isObject(doc)) throw new Error(`${path}: a document that is not an object`);
      return { file: relative(REPO_ROOT, path), doc };
    }),
  );
}

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: never) => Validatable;

/** The kubernetes-models class of each apiVersion/kind the manifests may use. */
const MODELS: Record<string, ModelClass> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
};

export function kindOf(doc: JsonObject): string {
  return `${text(doc.apiVersion)}/${text(doc.kind)}`;
}

/** Validates one object against the Kubernetes JSON schema of its kind; throws with the schema's complaint. */
export function validateManifest(doc: JsonObject): void {
  const Model = MODELS[kindOf(doc)];
  if (Model === undefined) throw new Error(`no schema known for ${kindOf(doc)}`);
  new Model(doc as never).validate();
}

/** Path access for assertions: `at(doc, 'spec', 'template', 'spec')`. */
export function at(value: Json | undefined, ...path: Array<string | number>): Json | undefined {
  let current: Json | undefined = value;
  for (const step of path) {
    if (typeof step === 'number') current = Array.isArray(current) ? current[step] : undefined;
    else current = isObject(current) ? current[step] : undefined;
  }
  return current;
}

export function objects(value: Json | undefined): JsonObject[] {
  return Array.isArray(value) ? value.filter(isObject) : [];
}
