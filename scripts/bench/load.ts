import { performance } from 'node:perf_hooks';

/**
 * Load shapes shared by the chat benchmark and its bare BullMQ baseline, so both are driven the same way. A target
 * has `lanes`: independent slots that each carry one message at a time (a conversation, or a job id series).
 */
export interface LoadTarget {
  lanes: number;
  /** Sends one message on `lane` and resolves once its answer has come back; rejects on a failure. */
  roundTrip(lane: number): Promise<void>;
}

export interface LoadRun {
  completed: number;
  failures: string[];
  wallMs: number;
  /** Per answered message, in ms: from when it was due (paced) or sent (saturated) to its answer. */
  latencies: number[];
}

export const perSecond = (run: LoadRun): number => run.completed / (run.wallMs / 1000);

function failureText(error: unknown): string {
  return error instanceof Error ? error.message.slice(0, 80) : String(error);
}

/**
 * Closed loop on every lane at once for `durationMs` (or until `maxMessages` were sent): each lane sends its next
 * message as soon as the previous one was answered. The most the target can do with `lanes` messages in flight.
 */
export async function saturate(target: LoadTarget, durationMs: number, maxMessages = Number.POSITIVE_INFINITY): Promise<LoadRun> {
  const run: LoadRun = { completed: 0, failures: [], wallMs: 0, latencies: [] };
  const started = performance.now();
  const deadline = started + durationMs;
  let sent = 0;
  const lane = async (index: number): Promise<void> => {
    while (performance.now() < deadline && sent < maxMessages) {
      sent += 1;
      const sentAt = performance.now();
      try {
        await target.roundTrip(index);
        run.latencies.push(performance.now() - sentAt);
        run.completed += 1;
      } catch (error) {
        run.failures.push(failureText(error));
      }
    }
  };
  await Promise.all(Array.from({ length: target.lanes }, (_, index) => lane(index)));
  run.wallMs = performance.now() - started;
  return run;
}

/**
 * Open loop: messages fall due at `ratePerSecond` for `durationMs`, whatever the answers do, each on an idle lane
 * (or, when every lane is busy, on the next lane to free up). Latency counts from when a message fell due, so time
 * spent waiting for a lane is not hidden (no coordinated omission).
 */
export async function paced(target: LoadTarget, ratePerSecond: number, durationMs: number): Promise<LoadRun> {
  const run: LoadRun = { completed: 0, failures: [], wallMs: 0, latencies: [] };
  const interval = 1000 / ratePerSecond;
  const idle = Array.from({ length: target.lanes }, (_, index) => index);
  const backlog: number[] = [];
  const started = performance.now();
  const end = started + durationMs;
  let due = started;
  let inFlight = 0;
  let finished: () => void = () => undefined;
  const allDone = new Promise<void>((resolve) => (finished = resolve));
  let scheduling = true;

  const start = (lane: number, dueAt: number): void => {
    inFlight += 1;
    target.roundTrip(lane).then(
      () => {
        run.latencies.push(performance.now() - dueAt);
        run.completed += 1;
      },
      (error: unknown) => run.failures.push(failureText(error)),
    ).finally(() => {
      inFlight -= 1;
      const next = backlog.shift();
      if (next !== undefined) start(lane, next);
      else idle.push(lane);
      if (!scheduling && inFlight === 0) finished();
    });
  };
  const tick = (): void => {
    const now = performance.now();
    while (due <= now && due < end) {
      const lane = idle.pop();
      if (lane === undefined) backlog.push(due);
      else start(lane, due);
      due += interval;
    }
    if (due < end) {
      setTimeout(tick, Math.max(0, due - performance.now()));
      return;
    }
    scheduling = false;
    if (inFlight === 0) finished();
  };
  tick();
  await allDone;
  run.wallMs = performance.now() - started;
  return run;
}
