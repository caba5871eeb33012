import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { Copy, DockerfileParser, Env, type Instruction } from 'dockerfile-ast';
import { REPO_ROOT, SCHEMA_VARIABLES } from '../helpers/deploy.js';
import { IMAGE_NODE_OPTIONS } from '../../shared/runtime.js';

/**
 * The Dockerfile, linted by parsing it (no container engine runs here): multi-stage, production dependencies by
 * `npm ci --omit=dev`, the compiled server on a distroless Node.js 24 runtime as non-root, exec-form entry point.
 * The rules follow hadolint's where they apply (DL3002 non-root last USER, DL3006/DL3007 tagged bases, DL3020 COPY
 * not ADD, DL3025 JSON CMD/ENTRYPOINT, DL3000 absolute WORKDIR, DL3022 COPY --from a named stage).
 */

const dockerfileText = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const dockerfile = DockerfileParser.parse(dockerfileText);
const instructions = dockerfile.getInstructions();
const froms = dockerfile.getFROMs();
const finalFrom = froms.at(-1);
const finalStage = finalFrom === undefined ? [] : instructions.filter((instruction) => instruction.getRange().start.line > finalFrom.getRange().start.line);
const buildStages = finalFrom === undefined ? instructions : instructions.filter((instruction) => instruction.getRange().start.line < finalFrom.getRange().start.line);

const keyword = (instruction: Instruction): string => instruction.getKeyword().toUpperCase();
const text = (instruction: Instruction): string => instruction.getArgumentsContent() ?? '';
const flag = (instruction: Instruction, name: string): string | undefined =>
  instruction instanceof Copy ? (instruction.getFlags().find((item) => item.getName() === name)?.getValue() ?? undefined) : undefined;

function jsonForm(instruction: Instruction | undefined): string[] {
  if (instruction === undefined) throw new Error('missing instruction');
  const parsed: unknown = JSON.parse(text(instruction));
  if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === 'string')) throw new Error(`${keyword(instruction)} is not in exec (JSON) form`);
  return parsed;
}

describe('Dockerfile', () => {
  it('has at least two stages, each base image tagged (never latest), the last one distroless Node.js 24', () => {
    expect(froms.length).to.be.at.least(2);
    for (const from of froms) {
      const tag = from.getImageTag();
      expect(tag ?? from.getImageDigest(), `${from.getImage() ?? '?'} has a tag or digest`).to.be.a('string');
      expect(tag, from.getImage() ?? '').to.not.equal('latest');
    }
    expect(finalFrom?.getImage()).to.match(/^gcr\.io\/distroless\/nodejs24-debian12(:nonroot)?(@sha256:[0-9a-f]{64})?$/);
    // The build stages use the same Node.js major, so native addons (argon2) are built for the runtime's ABI.
    for (const from of froms.slice(0, -1)) {
      expect(from.getImageName()).to.equal('node');
      expect(from.getImageTag()).to.match(/^24[-.]/);
    }
  });

  it('installs production dependencies with npm ci --omit=dev in a build stage, never npm install', () => {
    const runs = instructions.filter((instruction) => keyword(instruction) === 'RUN').map(text);
    expect(runs.some((run) => /\bnpm ci\b[^&|;]*--omit=dev\b/.test(run))).to.equal(true);
    expect(runs.some((run) => /\bnpm (install|i)\b/.test(run))).to.equal(false);
    expect(buildStages.some((instruction) => keyword(instruction) === 'RUN' && /\bnpm run build\b/.test(text(instruction))), 'the server is compiled in a build stage').to.equal(true);
  });

  it('the runtime stage runs nothing (no shell there), copies only from named stages, and ends as USER nonroot', () => {
    expect(finalStage.filter((instruction) => ['RUN', 'ADD', 'SHELL', 'ONBUILD'].includes(keyword(instruction))).map(keyword)).to.deep.equal([]);
    const stageNames = new Set(froms.map((from) => from.getBuildStage()).filter((name): name is string => name !== null));
    for (const copy of instructions.filter((instruction) => instruction instanceof Copy)) {
      const source = flag(copy, 'from');
      if (source !== undefined) expect(stageNames.has(source), `COPY --from=${source}`).to.equal(true);
    }
    const users = instructions.filter((instruction) => keyword(instruction) === 'USER');
    expect(users.length).to.be.greaterThan(0);
    expect(text(users.at(-1) as Instruction).trim()).to.equal('nonroot');
    expect(finalStage.some((instruction) => keyword(instruction) === 'USER')).to.equal(true);
  });

  it('has one exec-form entry point, the compiled botserver CLI, whose argument picks the role (default: api)', () => {
    const entrypoints = instructions.filter((instruction) => keyword(instruction) === 'ENTRYPOINT');
    const cmds = instructions.filter((instruction) => keyword(instruction) === 'CMD');
    expect(entrypoints).to.have.length(1);
    expect(cmds).to.have.length(1);
    expect(jsonForm(entrypoints[0])).to.deep.equal(['/nodejs/bin/node', '/app/dist/scripts/cli.js']);
    expect(jsonForm(cmds[0])).to.deep.equal(['api']);
    expect(instructions.some((instruction) => keyword(instruction) === 'ADD')).to.equal(false);
  });

  it('WORKDIR is absolute; the data dir is a folder of its own owned by the runtime user', () => {
    for (const workdir of instructions.filter((instruction) => keyword(instruction) === 'WORKDIR')) expect(text(workdir)).to.match(/^\//);
    const dataCopy = finalStage.find((instruction) => instruction instanceof Copy && /\/var\/lib\/?$/.test(text(instruction)));
    expect(dataCopy, 'a COPY that creates /var/lib/botserver').to.not.equal(undefined);
    expect(flag(dataCopy as Instruction, 'chown')).to.equal('65532:65532'); // distroless `nonroot`
  });

  it('sets only variables the configuration knows, none of them a secret, and listens on the configured port', () => {
    const names = instructions.filter((instruction) => instruction instanceof Env).flatMap((env) => env.getProperties().map((property) => property.getName()));
    expect(names.length).to.be.greaterThan(0);
    // NODE_OPTIONS is Node's own variable (V8 memory settings, see IMAGE_NODE_OPTIONS); every other name is ours.
    for (const name of names.filter((variable) => variable !== 'NODE_OPTIONS')) expect(SCHEMA_VARIABLES.has(name), name).to.equal(true);
    const args = instructions.filter((instruction) => keyword(instruction) === 'ARG').map(text);
    for (const name of [...names, ...args]) expect(name).to.not.match(/SECRET|PASSWORD|TOKEN|_KEY\b/i);
    const env = Object.fromEntries(instructions.filter((instruction) => instruction instanceof Env).flatMap((item) => item.getProperties().map((property) => [property.getName(), property.getValue()])));
    expect(env).to.include({ NODE_ENV: 'production', BOTSERVER_HOST: '0.0.0.0', NODE_OPTIONS: IMAGE_NODE_OPTIONS });
    const expose = instructions.find((instruction) => keyword(instruction) === 'EXPOSE');
    expect(expose === undefined ? undefined : text(expose)).to.equal(env.BOTSERVER_PORT);
  });

  it('.dockerignore lets in only the manifests, tsconfig files and source folders the build stages COPY', () => {
    const lines = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
    expect(lines[0], 'everything is excluded first').to.equal('**');
    const allowed = lines.filter((line) => line.startsWith('!')).map((line) => line.slice(1).replace(/\/$/, ''));
    const copied = buildStages
      .filter((instruction) => instruction instanceof Copy && flag(instruction, 'from') === undefined)
      .flatMap((copy) => copy.getArguments().slice(0, -1).map((argument) => argument.getValue().replace(/\/$/, '')));
    expect([...allowed].sort()).to.deep.equal([...new Set(copied)].sort());
    for (const secretish of ['deploy', '.env', 'node_modules', '.git', '.botserver', 'test']) expect(allowed).to.not.include(secretish);
  });
});
