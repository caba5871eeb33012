/**
 * The clients of the sockets benchmark, in a process of their own (their file descriptors count against this
 * process's limit, not the server's): reads one JSON job from stdin, `{url, event, sockets: [{token, room}]}`,
 * connects every socket (websocket transport), sends `event` with its room and waits for the ack, prints
 * `ready N` (or `failed: ...`), then holds the sockets idle until SIGTERM.
 */
import { io, type Socket } from 'socket.io-client';

interface Job {
  url: string;
  event: 'conversation:join' | 'join';
  sockets: Array<{ token: string; room: string }>;
}

const CONNECTING_AT_ONCE = 100;

async function readJob(): Promise<Job> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  return JSON.parse(text) as Job;
}

async function open(job: Job, spec: { token: string; room: string }): Promise<Socket> {
  const socket = io(job.url, { auth: { token: spec.token }, transports: ['websocket'], reconnection: false, forceNew: true, timeout: 60_000 });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (error: Error) => reject(error));
  });
  const payload = job.event === 'join' ? spec.room : { conversationId: spec.room };
  const ack = (await socket.timeout(60_000).emitWithAck(job.event, payload)) as { ok: boolean; error?: string };
  if (!ack.ok) throw new Error(`join refused: ${ack.error ?? '?'}`);
  return socket;
}

const job = await readJob();
const sockets: Socket[] = [];
try {
  for (let index = 0; index < job.sockets.length; index += CONNECTING_AT_ONCE) {
    sockets.push(...(await Promise.all(job.sockets.slice(index, index + CONNECTING_AT_ONCE).map((spec) => open(job, spec)))));
  }
  process.stdout.write(`ready ${sockets.length}\n`);
} catch (error) {
  process.stdout.write(`failed: ${error instanceof Error ? error.message : String(error)}\n`);
}
process.once('SIGTERM', () => {
  for (const socket of sockets) socket.close();
  process.exit(0);
});
