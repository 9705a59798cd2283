/**
 * fast-check arbitraries for hostile input: strings an attacker or a broken client sends, JSON of any
 * shape, and mutations of a valid value (a field deleted, retyped, made huge, or an unknown one added)
 * so that the fuzzers reach past the first schema check into the handlers.
 */
import fc from 'fast-check';

/** The number of runs each fuzz property makes; `FUZZ_RUNS=N` in the environment changes it. */
export function fuzzRuns(defaultRuns: number): number {
  const fromEnv = Number(process.env.FUZZ_RUNS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : defaultRuns;
}

const NASTY_STRINGS = [
  '',
  ' ',
  '.',
  '..',
  '../..',
  '/',
  '//',
  '%',
  '%E0',
  '%00',
  '%2F..%2F',
  '%ZZ',
  '\u0000',
  '\uD800',
  '\uFEFF',
  'null',
  'undefined',
  'NaN',
  '-1',
  '0',
  '00',
  '1.5',
  '1e308',
  '9007199254740993',
  '99999999999999999999999',
  'sha256:',
  `sha256:${'0'.repeat(64)}`,
  'a'.repeat(4096),
  '__proto__',
  'constructor',
  "'; DROP TABLE jobs; --",
  '${jndi:ldap://x}',
  '<script>alert(1)</script>',
  'Site.A',
  'local',
  '*',
];

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.integer().map(String) },
  { weight: 1, arbitrary: fc.double().map(String) },
);

const hostileNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, -1, 1, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, 0.5, Number.MAX_SAFE_INTEGER + 2),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Any JSON-representable value, nested a little. */
export const hostileValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    hostileString,
    hostileNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(hostileString, tie('value'), { maxKeys: 4 }),
  ),
})).value;

type Path = (string | number)[];

function pathsOf(value: unknown, prefix: Path = [], depth = 0): Path[] {
  if (depth > 4 || value === null || typeof value !== 'object') return [];
  const entries: [string | number, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : Object.entries(value as Record<string, unknown>);
  return entries.flatMap(([key, child]) => [[...prefix, key], ...pathsOf(child, [...prefix, key], depth + 1)]);
}

function withChange(value: unknown, path: Path, change: (parent: any, key: string | number) => void): unknown {
  const copy = structuredClone(value);
  let parent: any = copy;
  for (const key of path.slice(0, -1)) parent = parent?.[key];
  // An earlier mutation of the chain may have replaced this part already.
  if (parent === null || typeof parent !== 'object') return copy;
  change(parent, path[path.length - 1] as string | number);
  return copy;
}

/**
 * Variants of a valid value: unchanged, one field deleted, one replaced by a hostile value, one
 * unknown field added (at the top or inside), or a few such changes together.
 */
export function mutated(valid: unknown): fc.Arbitrary<unknown> {
  const paths = pathsOf(valid);
  if (paths.length === 0) return fc.oneof(fc.constant(valid), hostileValue);
  const onePath = fc.constantFrom(...paths);
  const mutation: fc.Arbitrary<(v: unknown) => unknown> = fc.oneof(
    onePath.map(
      (path) => (v: unknown) =>
        withChange(v, path, (parent, key) => {
          if (Array.isArray(parent)) parent.splice(Number(key), 1);
          else delete parent[key];
        }),
    ),
    fc.tuple(onePath, hostileValue).map(
      ([path, replacement]) =>
        (v: unknown) =>
          withChange(v, path, (parent, key) => {
            parent[key] = replacement;
          }),
    ),
    fc.tuple(hostileString, hostileValue).map(
      ([key, extra]) =>
        (v: unknown) =>
          v !== null && typeof v === 'object' && !Array.isArray(v) ? { ...v, [key]: extra } : v,
    ),
  );
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant(valid) },
    {
      weight: 6,
      arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }).map((ms) => ms.reduce((v, m) => m(v), valid)),
    },
    { weight: 1, arbitrary: hostileValue },
  );
}

/** A JSON text, or something that only looks like one (truncated, garbage, empty). */
export function hostileBody(valid: unknown): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: mutated(valid).map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 1, arbitrary: mutated(valid).map((v) => (JSON.stringify(v) ?? '').slice(0, -1)) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom('', '{', '[]', '[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]', '"\\ud800"', 'nul'),
    },
  );
}
