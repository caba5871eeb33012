import winston from 'winston';
import DailyRotateFile from 'winston-daily-rotate-file';
import { Redactor } from './redact.js';

export { Redactor, REDACTED } from './redact.js';

export interface LoggerOptions {
  level: string;
  logDir?: string | undefined;
  /** Values never to be written, wherever they appear (the configured keys). */
  secretValues?: Iterable<string>;
  service?: string;
}

const redactor = new Redactor();

/** Winston format that rewrites the whole entry, message and metadata, through the redactor. */
const redactFormat = winston.format((info) => {
  const cleaned = redactor.redact({ ...info }) as Record<string, unknown>;
  for (const field of Object.keys(info)) if (!(field in cleaned)) Reflect.deleteProperty(info, field);
  Object.assign(info, cleaned);
  return info;
});

function buildTransports(options: LoggerOptions): winston.transport[] {
  const transports: winston.transport[] = [new winston.transports.Console({ stderrLevels: ['error', 'warn'] })];
  if (options.logDir !== undefined) {
    transports.push(
      new DailyRotateFile({
        dirname: options.logDir,
        filename: `${options.service ?? 'botserver'}-%DATE%.log`,
        datePattern: 'YYYY-MM-DD',
        maxFiles: '30d',
        options: { mode: 0o600 },
      }),
    );
  }
  return transports;
}

/** The one logger of the process: JSON lines, redacted. Reconfigured once the configuration is read. */
export const log = winston.createLogger({
  level: process.env.LOG_LEVEL ?? 'info',
  format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), redactFormat(), winston.format.json()),
  defaultMeta: { service: 'botserver' },
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn'] })],
});

export function configureLogger(options: LoggerOptions): void {
  if (options.secretValues !== undefined) redactor.addSecretValues(options.secretValues);
  log.configure({
    level: options.level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), redactFormat(), winston.format.json()),
    defaultMeta: { service: options.service ?? 'botserver', pid: process.pid },
    transports: buildTransports(options),
  });
}

/** Adds values to redact (e.g. a key loaded after start). */
export function addSecretValues(values: Iterable<string>): void {
  redactor.addSecretValues(values);
}

export type Logger = winston.Logger;
