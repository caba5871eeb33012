import type { NextFunction, Request, Response } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { QUEUE_NAMES } from '../../shared/queue/index.js';
import type { QueueFactory } from '../../shared/queue/index.js';
import type { Readiness } from '../../shared/health.js';
import type { EmailStats } from '../../shared/email/stats.js';

/** Prometheus metrics of one API process: HTTP, queues, sockets and security counters. */
export class ApiMetrics {
  readonly registry = new Registry();
  readonly httpDuration = new Histogram({
    name: 'botserver_http_request_duration_seconds',
    help: 'HTTP request duration by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly refusals = new Counter({
    name: 'botserver_http_refusals_total',
    help: 'Requests refused with 401, 403 or 429, by route',
    labelNames: ['status', 'route'] as const,
    registers: [this.registry],
  });
  readonly loginFailures = new Counter({ name: 'botserver_login_failures_total', help: 'Failed logins', registers: [this.registry] });
  readonly lockouts = new Counter({ name: 'botserver_lockouts_total', help: 'Accounts locked after failed logins', registers: [this.registry] });
  readonly socketAbuseDisconnects = new Counter({
    name: 'botserver_socket_abuse_disconnects_total',
    help: 'Sockets disconnected for invalid events or rate abuse',
    registers: [this.registry],
  });
  readonly egressDenied = new Counter({
    name: 'botserver_egress_denied_total',
    help: 'Connections to tenant-chosen destinations refused by the egress policy, by protocol and reason',
    labelNames: ['protocol', 'reason'] as const,
    registers: [this.registry],
  });
  readonly unavailableRefusals = new Counter({
    name: 'botserver_unavailable_refusals_total',
    help: 'HTTP requests and socket events refused as unavailable (a dependency did not answer), by channel',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });
  /** Set by the app: the readiness check behind `/readyz`, run at each scrape for `botserver_dependency_up`. */
  readiness: (() => Promise<Readiness>) | undefined;
  private readonly dependencyUp = new Gauge({
    name: 'botserver_dependency_up',
    help: '1 when the dependency answered the readiness check at this scrape, else 0',
    labelNames: ['dependency'] as const,
    registers: [this.registry],
  });
  /** Set by the Socket.IO layer once it exists. */
  socketCount: () => number = () => 0;
  private readonly sockets = new Gauge({ name: 'botserver_sockets', help: 'Connected Socket.IO clients of this process', registers: [this.registry] });
  private readonly queueJobs = new Gauge({
    name: 'botserver_queue_jobs',
    help: 'Jobs per queue and state',
    labelNames: ['queue', 'state'] as const,
    registers: [this.registry],
  });

  /** Set by the context: the e-mail workers' counters (kept in Redis by whichever worker counted). */
  emailStats: (() => Promise<EmailStats>) | undefined;
  private readonly emailQuarantined = new Counter({
    name: 'botserver_email_quarantined_total',
    help: 'Inbound mails given up on (quarantined), by reason: too_large, failed, crashed',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly emailRefused = new Counter({
    name: 'botserver_email_replies_refused_total',
    help: 'Inbound mails not answered because of a limit, by reason (reply_limit: the per-correspondent hourly limit)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor(private readonly queues: QueueFactory) {
    collectDefaultMetrics({ register: this.registry, prefix: 'botserver_' });
  }

  /** Times every request; the route label is the matched pattern, never the raw path (bounded cardinality). */
  middleware() {
    return (req: Request, res: Response, next: NextFunction): void => {
      const stop = this.httpDuration.startTimer();
      res.on('finish', () => {
        const route = routeLabel(req);
        stop({ method: req.method, route, status: String(res.statusCode) });
        if ([401, 403, 429].includes(res.statusCode)) this.refusals.inc({ status: String(res.statusCode), route });
        if (res.statusCode === 503 && route !== '/readyz') this.unavailableRefusals.inc({ channel: 'http' });
      });
      next();
    };
  }

  async render(): Promise<string> {
    this.sockets.set(this.socketCount());
    if (this.readiness !== undefined) {
      const { body } = await this.readiness();
      this.dependencyUp.set({ dependency: 'redis' }, body.redis === 'up' ? 1 : 0);
      this.dependencyUp.set({ dependency: 'postgres' }, body.postgres === 'up' ? 1 : 0);
    }
    if (this.emailStats !== undefined) {
      const stats = await this.emailStats();
      this.emailQuarantined.reset();
      for (const [reason, count] of Object.entries(stats.quarantined)) this.emailQuarantined.inc({ reason }, count);
      this.emailRefused.reset();
      for (const [reason, count] of Object.entries(stats.refused)) this.emailRefused.inc({ reason }, count);
    }
    await Promise.all(
      QUEUE_NAMES.map(async (name) => {
        const counts = await this.queues.queue(name).getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed');
        for (const [state, count] of Object.entries(counts)) this.queueJobs.set({ queue: name, state }, count);
      }),
    );
    return this.registry.metrics();
  }
}

function routeLabel(req: Request): string {
  const route = (req.route as { path?: unknown } | undefined)?.path;
  return typeof route === 'string' ? `${req.baseUrl}${route}` : 'unmatched';
}
