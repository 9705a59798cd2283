/**
 * Lenient reading of a value described by a strict zod schema: keys the schema does not know are
 * dropped (at every depth) before the value is validated. A pilot reads a matcher's job descriptions
 * this way, so a newer matcher may add description fields without breaking older pilots, while the
 * matcher itself keeps refusing unknown fields in submissions (a typo must never be ignored there).
 */
import type { z } from 'zod';

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
}

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** A copy of `value` without the object keys `schema` does not declare; anything else is left for validation. */
export function dropUnknownKeys(schema: z.ZodType, value: unknown): unknown {
  const def = defOf(schema);
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
    case 'nonoptional':
      return def.innerType ? dropUnknownKeys(def.innerType, value) : value;
    case 'pipe':
      return def.in ? dropUnknownKeys(def.in, value) : value;
    case 'array':
      return Array.isArray(value) && def.element
        ? value.map((item) => dropUnknownKeys(def.element as z.ZodType, item))
        : value;
    case 'record':
      if (!isPlainObject(value) || !def.valueType) return value;
      return Object.fromEntries(
        Object.entries(value).map(([key, item]) => [key, dropUnknownKeys(def.valueType as z.ZodType, item)]),
      );
    case 'object': {
      if (!isPlainObject(value) || !def.shape) return value;
      const out: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(def.shape)) {
        if (Object.hasOwn(value, key)) out[key] = dropUnknownKeys(child, value[key]);
      }
      return out;
    }
    default:
      return value;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
