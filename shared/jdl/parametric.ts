/**
 * DIRAC's parametric jobs: one JDL with `Parameters` expands to N jobs. `Parameters` is a list of
 * values or a count; a count takes its values from `ParameterStart` (1), `ParameterStep` (0) and
 * `ParameterFactor` (1): p0 = start, p(i) = p(i-1) × factor + step. Named sequences
 * `Parameters.NAME = {...}` go with it (same length). In every other attribute `%s` becomes the value,
 * `%(NAME)s` the named value and `%n` the job's index, zero-padded to the width of N-1. Each job
 * also gets `Parameter` (and `Parameter.NAME`) and `ParameterNumber`, as DIRAC adds them.
 * A value written with a decimal point makes the sequence decimal, printed as Python prints floats
 * (`0.0`, `0.1`), so arguments come out as DIRAC users see them today.
 */
import { PilothouseError } from '../errors.ts';
import type { JdlAttribute, JdlValue, SourcePosition } from './classad.ts';

const KEYS = ['parameters', 'parameterstart', 'parameterstep', 'parameterfactor'] as const;
type Key = (typeof KEYS)[number];

interface Sequence {
  values: (JdlValue | null)[];
}

/** The attribute sets of every job the JDL stands for (one when it is not parametric). */
export function expandParametric(attributes: JdlAttribute[], source: string, maxJobs: number): JdlAttribute[][] {
  const byKey = new Map<string, Partial<Record<Key, JdlAttribute>>>();
  const rest: JdlAttribute[] = [];
  for (const attribute of attributes) {
    const [head, ...tail] = attribute.name.split('.');
    const key = KEYS.find((candidate) => candidate === head?.toLowerCase());
    if (key === undefined) {
      rest.push(attribute);
      continue;
    }
    const name = tail.join('.') || '0';
    byKey.set(name, { ...byKey.get(name), [key]: attribute });
  }
  if (byKey.size === 0) return [attributes];
  const fail = (at: SourcePosition, message: string) =>
    new PilothouseError('JDL_INVALID', `${source}:${at.line}:${at.column}: ${message}`, { ...at });

  let count: number | null = null;
  let countAt: SourcePosition | null = null;
  for (const [, keys] of byKey) {
    const parameters = keys.parameters;
    if (parameters === undefined) {
      const stray = Object.values(keys)[0] as JdlAttribute;
      throw fail(stray.at, `${stray.name} without the Parameters attribute it belongs to`);
    }
    const value = parameters.value;
    const length = value.kind === 'list' ? value.items.length : value.kind === 'number' ? value.value : NaN;
    if (!Number.isInteger(length) || length < 1) {
      throw fail(parameters.at, `${parameters.name} must be a list of values or a whole number of jobs ≥ 1`);
    }
    if (count !== null && length !== count) {
      throw fail(
        parameters.at,
        `${parameters.name} has ${length} values, but ${count} at ${countAt?.line}:${countAt?.column}`,
      );
    }
    count = length;
    countAt = parameters.at;
  }
  const jobs = count as number;
  if (jobs > maxJobs) {
    throw new PilothouseError(
      'SUBMISSION_TOO_LARGE',
      `${source}: the parametric job expands to ${jobs} jobs, more than the ${maxJobs} allowed at once`,
      { maxJobs },
    );
  }
  const sequences = new Map<string, Sequence>();
  for (const [name, keys] of byKey) sequences.set(name, sequenceOf(keys, jobs, fail));

  const width = String(jobs - 1).length;
  // Most attributes hold no placeholder: those are shared by every job instead of copied.
  const varying = rest.map((attribute) => hasPlaceholder(attribute.value));
  const expanded: JdlAttribute[][] = [];
  for (let n = 0; n < jobs; n += 1) {
    const values = new Map<string, JdlValue | null>();
    for (const [name, sequence] of sequences) values.set(name, sequence.values[n] ?? null);
    const index = String(n).padStart(width, '0');
    const job = rest.map((attribute, i) =>
      varying[i] ? { ...attribute, value: substitute(attribute.value, values, index) } : attribute,
    );
    for (const [name, value] of values) {
      if (value === null) continue;
      job.push({ name: name === '0' ? 'Parameter' : `Parameter.${name}`, value, at: value.at });
    }
    job.push({
      name: 'ParameterNumber',
      value: { kind: 'number', value: n, text: String(n), at: countAt! },
      at: countAt!,
    });
    expanded.push(job);
  }
  return expanded;
}

function sequenceOf(
  keys: Partial<Record<Key, JdlAttribute>>,
  jobs: number,
  fail: (at: SourcePosition, message: string) => PilothouseError,
): Sequence {
  const parameters = keys.parameters as JdlAttribute;
  if (parameters.value.kind === 'list') return { values: parameters.value.items };
  const numberOf = (key: Key, fallback: number): { value: number; decimal: boolean } => {
    const attribute = keys[key];
    if (attribute === undefined) return { value: fallback, decimal: false };
    if (attribute.value.kind !== 'number') throw fail(attribute.at, `${attribute.name} must be a number`);
    return { value: attribute.value.value, decimal: /[.eE]/.test(attribute.value.text) };
  };
  const start = numberOf('parameterstart', 1);
  const step = numberOf('parameterstep', 0);
  const factor = numberOf('parameterfactor', 1);
  const decimal = start.decimal || step.decimal || factor.decimal;
  const values: JdlValue[] = [];
  let current = start.value;
  for (let n = 0; n < jobs; n += 1) {
    if (n > 0) current = current * factor.value + step.value;
    const text = decimal ? pythonFloat(current) : String(current);
    values.push({ kind: 'number', value: current, text, at: parameters.at });
  }
  return { values };
}

/** Python's repr of a float: always a decimal point or an exponent (1.0, 0.1, 1e-05, 1e+16). */
export function pythonFloat(value: number): string {
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : value < 0 ? '-inf' : 'nan';
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude >= 1e16 || magnitude < 1e-4)) {
    const [mantissa, exponent] = value.toExponential().split('e') as [string, string];
    const sign = exponent.startsWith('-') ? '-' : '+';
    return `${mantissa}e${sign}${exponent.replace(/^[+-]/, '').padStart(2, '0')}`;
  }
  const text = String(value);
  return /[.e]/.test(text) ? text : `${text}.0`;
}

function textOf(value: JdlValue): string {
  switch (value.kind) {
    case 'string':
      return value.value;
    case 'number':
      return value.text;
    case 'boolean':
      return String(value.value);
    case 'expression':
      return value.text;
    case 'list':
      return value.items.map(textOf).join(',');
    case 'ad':
      return value.attributes.map((a) => `${a.name} = ${textOf(a.value)}`).join('; ');
  }
}

const PLACEHOLDER = /%\(([^)]*)\)s|%s|%n/g;
const HAS_PLACEHOLDER = new RegExp(PLACEHOLDER.source);

function hasPlaceholder(value: JdlValue): boolean {
  switch (value.kind) {
    case 'string':
      return HAS_PLACEHOLDER.test(value.value);
    case 'expression':
      return HAS_PLACEHOLDER.test(value.text);
    case 'list':
      return value.items.some(hasPlaceholder);
    default:
      return false;
  }
}

function substitute(value: JdlValue, parameters: Map<string, JdlValue | null>, index: string): JdlValue {
  const replaceIn = (text: string) =>
    text.replace(PLACEHOLDER, (whole, name: string | undefined) => {
      if (whole === '%n') return index;
      const parameter = parameters.get(name ?? '0');
      return parameter ? textOf(parameter) : whole;
    });
  /** A value that is nothing but one placeholder takes the parameter's own value (a list stays a list). */
  const whole = (text: string): JdlValue | null => {
    const match = /^(?:%\(([^)]*)\)s|%s)$/.exec(text);
    return match ? (parameters.get(match[1] ?? '0') ?? null) : null;
  };
  switch (value.kind) {
    case 'string': {
      const own = value.quoted ? null : whole(value.value);
      return own ? { ...own, at: value.at } : { ...value, value: replaceIn(value.value) };
    }
    case 'expression':
      return { ...value, text: replaceIn(value.text) };
    case 'list':
      return {
        ...value,
        items: value.items.flatMap((item) => {
          const own = item.kind === 'string' ? whole(item.value) : null;
          if (own?.kind === 'list') return own.items;
          return [substitute(item, parameters, index)];
        }),
      };
    default:
      return value;
  }
}
