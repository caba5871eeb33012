import { Command, CommanderError, Option } from 'commander';
import { ROLES } from '../shared/accounts/index.js';
import { loadConfig, workerFamilies, type Config, type WorkerFamily } from '../shared/config/index.js';
import { ConfigError, UsageError, AppError } from '../shared/errors.js';
import { configureProcessLogging, createKernel } from '../shared/kernel.js';
import { verifyAudit } from './commands/audit.js';
import { checkRotation, formatRotationReport } from './commands/keys.js';
import { envFileLines, keyLines, writeEnvFile } from './commands/keygen.js';
import { migrate } from './commands/migrate.js';
import { startAll } from './commands/start.js';
import { createUser } from './commands/users.js';
import { stopOnSignals } from './lifecycle.js';

function config(service: string): Config {
  const loaded = loadConfig();
  configureProcessLogging(loaded, service);
  return loaded;
}

const program = new Command()
  .name('botserver')
  .description('Security-first bot server: API, workers and operations')
  .exitOverride()
  .configureOutput({ writeErr: (text) => process.stderr.write(text) });

program
  .command('api')
  .description('run the HTTP + Socket.IO layer')
  .action(async () => {
    // Loaded by the command that runs it: a worker process never loads the API's code, nor the API a worker's.
    const { startApiServer } = await import('../api/server.js');
    const kernel = createKernel(config('botserver-api'), 'api');
    const server = await startApiServer(kernel);
    stopOnSignals(() => server.shutdown());
  });

program
  .command('worker')
  .description('run one worker family (its own process), or all')
  .addArgument(new Command().createArgument('<family>', 'worker family').choices([...workerFamilies, 'all']))
  .action(async (family: WorkerFamily | 'all') => {
    const { startWorkers } = await import('../workers/main.js');
    const workers = await startWorkers(config(`botserver-worker-${family}`), family);
    stopOnSignals(() => workers.shutdown());
  });

program
  .command('migrate')
  .description('apply database migrations')
  .action(async () => {
    const applied = await migrate(config('botserver-migrate'));
    process.stdout.write(applied.length === 0 ? 'database is up to date\n' : `applied: ${applied.join(', ')}\n`);
  });

program
  .command('keygen')
  .description('print three new 256-bit keys for production; with --out, write every secret a deployment needs')
  .option('--out <path>', 'write a new env file (0600): the three keys, BOTSERVER_JWT_PRIVATE_KEY, BOTSERVER_METRICS_TOKEN')
  .option('--secret <NAME...>', 'with --out: also a random password for each NAME (e.g. POSTGRES_PASSWORD)')
  .action((options: { out?: string; secret?: string[] }) => {
    if (options.out === undefined) {
      if (options.secret !== undefined) throw new UsageError('--secret', '--secret needs --out');
      process.stdout.write(`${keyLines().join('\n')}\n`);
      return;
    }
    const lines = envFileLines(options.secret ?? []);
    writeEnvFile(options.out, lines);
    process.stdout.write(`wrote ${lines.length} secrets to ${options.out} (mode 0600): ${lines.map((line) => line.split('=')[0]).join(', ')}\n`);
  });

const keys = program.command('keys').description('key rotation');
keys
  .command('rotate')
  .description('with --check: what this configuration (new keys set, replaced ones in BOTSERVER_PREVIOUS_KEYS) would invalidate')
  .option('--check', 'report only; change nothing')
  .action(async (options: { check?: boolean }) => {
    if (options.check !== true) throw new UsageError('--check', 'only `keys rotate --check` exists: a rotation is made by changing the variables as the README (Key rotation) says');
    const report = await checkRotation(config('botserver-cli'));
    process.stdout.write(formatRotationReport(report));
    if (report.breaks) process.exitCode = 1;
  });

const user = program.command('user').description('manage local accounts');
user
  .command('create')
  .description('create a local account with a one-time password')
  .requiredOption('--email <email>', 'e-mail address')
  .addOption(new Option('--role <role>', 'role in the tenant').choices([...ROLES]).makeOptionMandatory())
  .option('--tenant <name>', 'tenant (created when new)', 'default')
  .option('--json', 'print one JSON line')
  .action(async (options: { email: string; role: (typeof ROLES)[number]; tenant: string; json?: boolean }) => {
    const created = await createUser(config('botserver-cli'), { email: options.email, role: options.role, tenant: options.tenant });
    const { id, email, tenant, role, password } = created;
    process.stdout.write(
      options.json === true
        ? `${JSON.stringify({ id, email, tenant, role, password })}\n`
        : `created ${role} ${email} in tenant ${tenant}\none-time password (shown once, must be changed at first login): ${password}\n`,
    );
  });

const audit = program.command('audit').description('the audit trail');
audit
  .command('verify')
  .description('walk the audit hash chain')
  .action(async () => {
    const result = await verifyAudit(config('botserver-cli'));
    if (result.ok) process.stdout.write(`audit chain intact: ${result.checked} event(s) checked\n`);
    else {
      process.stdout.write(`audit chain broken at row ${result.firstBrokenId ?? '?'} (${result.checked} intact before it)\n`);
      process.exitCode = 1;
    }
  });

program
  .command('start')
  .description('everything on one machine: migrations, bootstrap admin, API and all workers (what `npm start` runs)')
  .action(async () => {
    await startAll(config('botserver-start'));
  });

function fail(error: unknown): never {
  if (error instanceof CommanderError) {
    process.exit(error.exitCode === 0 ? 0 : 2);
  }
  if (error instanceof ConfigError || error instanceof UsageError) {
    process.stderr.write(`botserver: ${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof AppError && error.expose) {
    process.stderr.write(`botserver: ${error.message}\n`);
    process.exit(error.status === 400 ? 2 : 1);
  }
  process.stderr.write(`botserver: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  fail(error);
}
