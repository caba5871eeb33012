/**
 * `npm run bench -- <name> [args...]`: runs one benchmark in this process. Each benchmark module exports
 * `run(args)`, resolving with the process exit code; it is loaded only when chosen.
 */

interface Benchmark {
  description: string;
  load(): Promise<{ run(args: string[]): Promise<number> }>;
}

const BENCHMARKS: Record<string, Benchmark> = {
  login: {
    description: 'Argon2id hash cost, 2 x 50 concurrent logins: latency, throughput and event-loop lag',
    load: () => import('./login.js'),
  },
  chat: {
    description: 'C sockets x L conversations to a rule bot (API, reply and audit worker processes): most replies/s and p50/p99, p50/p99 at half that rate, beside a bare BullMQ loop; --profile DIR: CPU profiles and round trips per message; --api A --workers W: scale-out',
    load: () => import('./chat.js'),
  },
  sockets: {
    description: 'N idle authenticated sockets (default 2000 and 10000) on the API process against a bare Socket.IO server with the Redis adapter: RSS per socket and the ratio',
    load: () => import('./sockets.js'),
  },
  files: {
    description: 'N MiB (default 1024) to the S3 test server: plain multipart upload vs the files worker (encrypt + upload): MiB/s, ratio, worker peak RSS',
    load: () => import('./files.js'),
  },
  knowledge: {
    description: 'N-page PDF (default 100) and a labelled set into the knowledge base (Qdrant stand-in or QDRANT_URL): pages/s, search p50/p99, hit rate at 5 hybrid vs dense',
    load: () => import('./knowledge.js'),
  },
  faults: {
    description: 'A reply worker SIGKILLed 5 times during a stream (2 worker processes, LLM stand-in): per kill, how long its unanswered messages took to come back',
    load: () => import('./faults.js'),
  },
  audit: {
    description: 'An N-row audit chain (default 1,000,000): verification rows/s against reading the pages only and against one bare HMAC per row',
    load: () => import('./audit.js'),
  },
  email: {
    description: 'N mails (default 1000) into a bot mailbox in Dovecot, answered over IMAP IDLE → reply → SMTP: mails/s, p50/p99 inbound-to-reply latency',
    load: () => import('./email.js'),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(BENCHMARKS).map((name) => name.length));
  const lines = Object.entries(BENCHMARKS).map(([name, bench]) => `  ${name.padEnd(width)}  ${bench.description}`);
  return ['usage: npm run bench -- <name> [args...]', '', 'benchmarks:', ...lines, ''].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return 0;
  }
  const bench = name === undefined ? undefined : Object.hasOwn(BENCHMARKS, name) ? BENCHMARKS[name] : undefined;
  if (bench === undefined) {
    process.stderr.write(`${name === undefined ? 'no benchmark named' : `unknown benchmark "${name}"`}\n${usage()}`);
    return 2;
  }
  const module = await bench.load();
  return module.run(args);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
