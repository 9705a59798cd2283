/**
 * The one way outside input is validated with zod: parse, or throw a PilothouseError whose `field`
 * names the first offending field (an unknown key included) and whose code says what kind of input it
 * was (a request body, a search, a configuration file).
 */
import type { z } from 'zod';
import { PilothouseError, type ErrorCode } from './errors.ts';

/** Dotted path of the first issue, descending into unions and naming an unknown key itself. */
export function firstIssue(error: z.ZodError): { field: string; message: string } {
  const outer = error.issues[0];
  if (!outer) return { field: '', message: 'invalid' };
  // A union reports its branches' issues relative to itself: keep the union's own path in front.
  const inner = outer.code === 'invalid_union' ? outer.errors.flat()[0] : undefined;
  const issue = inner ?? outer;
  const path = [...(inner ? outer.path : []), ...issue.path, ...(issue.code === 'unrecognized_keys' ? issue.keys : [])];
  return { field: path.map(String).join('.'), message: issue.message };
}

export function parseOrThrow<T>(
  schema: z.ZodType<T>,
  raw: unknown,
  code: ErrorCode = 'VALIDATION_FAILED',
  source?: string,
): T {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const { field, message } = firstIssue(parsed.error);
  const where = field || 'body';
  throw new PilothouseError(code, source ? `${source}: ${where}: ${message}` : `${where}: ${message}`, { field });
}
