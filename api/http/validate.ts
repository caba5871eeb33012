import type { z } from 'zod';
import { ValidationError } from '../../shared/errors.js';

/** Parses input with its schema; the first problem becomes a 400 naming the offending field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, code = 'invalid_request'): z.infer<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue === undefined ? undefined : issue.code === 'unrecognized_keys' ? issue.keys.join(',') : issue.path.join('.');
  const message = issue === undefined ? 'invalid input' : issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : `${field === '' ? 'input' : field}: ${issue.message}`;
  throw new ValidationError(message, field === '' ? undefined : field, code);
}
