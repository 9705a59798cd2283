/**
 * A DIRAC JDL as Pilothouse jobs: parsed (classad.ts), expanded when parametric (parametric.ts), and
 * each job's attributes mapped onto the native description. Attribute names are matched without
 * regard to case, as ClassAds do. Attributes Pilothouse does not act on (OutputSE, LogLevel, ...) and
 * unknown ones are kept in `extraFields`, with a warning, as DIRAC keeps them; a name one or two
 * letters away from a known one is refused instead (`Executible` would otherwise lose the executable).
 * InputSandbox entries that are local files are returned for the caller to pack and upload; `LFN:`
 * and `SB:` references name storage of a DIRAC installation and are refused.
 */
import { parse as parseShellWords } from 'shell-quote';
import { PilothouseError } from '../errors.ts';
import type { JobDescriptionInput } from '../job/description.ts';
import { parseClassAd, type JdlAttribute, type JdlValue } from './classad.ts';
import { expandParametric } from './parametric.ts';

export interface JdlJob {
  description: JobDescriptionInput;
  /** InputSandbox entries that are local paths (relative to the JDL's directory), to pack and upload. */
  localInputFiles: string[];
}

export interface JdlParse {
  jobs: JdlJob[];
  warnings: string[];
}

/** DIRAC's default cap on the jobs one parametric description expands to is 100; ours is an option. */
export const DEFAULT_MAX_PARAMETRIC_JOBS = 100_000;

const KNOWN = [
  'Executable',
  'Arguments',
  'StdOutput',
  'StdError',
  'InputSandbox',
  'OutputSandbox',
  'InputData',
  'Site',
  'BannedSite',
  'BannedSites',
  'GridCE',
  'Platform',
  'Tags',
  'Tag',
  'CPUTime',
  'NumberOfProcessors',
  'MinNumberOfProcessors',
  'MaxNumberOfProcessors',
  'WholeNode',
  'MaxRAM',
  'Priority',
  'JobType',
  'JobGroup',
  'JobName',
  'ExecutionEnvironment',
] as const;
/** DIRAC attributes with no effect here: kept with the job, named in a warning. */
const KEPT = [
  'OutputData',
  'OutputSE',
  'OutputPath',
  'InputDataPolicy',
  'InputDataModule',
  'SoftwareDistModule',
  'LogLevel',
  'JobConfigArgs',
  'StopSigRegex',
  'StopSigNumber',
  'StopSigStartSeconds',
  'StopSigFinishSeconds',
  'DisableCPUCheck',
  'Origin',
  'Owner',
  'OwnerGroup',
  'VirtualOrganization',
  'JobPath',
  'Requirements',
  'Parameter',
  'ParameterNumber',
] as const;
const KNOWN_BY_LOWER = new Map<string, string>(KNOWN.map((name) => [name.toLowerCase(), name]));
const KEPT_BY_LOWER = new Map<string, string>(KEPT.map((name) => [name.toLowerCase(), name]));

export function parseJdl(text: string, options: { source?: string; maxJobs?: number } = {}): JdlParse {
  const source = options.source ?? 'JDL';
  const attributes = parseClassAd(text, source);
  const warnings = new Set<string>();
  const jobs = expandParametric(attributes, source, options.maxJobs ?? DEFAULT_MAX_PARAMETRIC_JOBS).map((set) =>
    jobFrom(set, source, warnings),
  );
  return { jobs, warnings: [...warnings] };
}

function jobFrom(attributes: JdlAttribute[], source: string, warnings: Set<string>): JdlJob {
  const fail = (attribute: JdlAttribute, message: string) =>
    new PilothouseError(
      'JDL_INVALID',
      `${source}:${attribute.at.line}:${attribute.at.column}: ${attribute.name} ${message}`,
      {
        line: attribute.at.line,
        column: attribute.at.column,
        field: attribute.name,
      },
    );
  const known = new Map<string, JdlAttribute>();
  const extraFields: Record<string, unknown> = {};
  for (const attribute of attributes) {
    const lower = attribute.name.toLowerCase();
    const name = KNOWN_BY_LOWER.get(lower);
    if (name !== undefined) {
      if (known.has(name)) throw fail(attribute, `is given twice`);
      known.set(name, attribute);
      continue;
    }
    const kept = KEPT_BY_LOWER.get(lower) ?? (lower.startsWith('parameter.') ? attribute.name : undefined);
    if (kept === undefined) {
      const near = KNOWN.find((candidate) => editDistance(candidate.toLowerCase(), lower) <= 2);
      if (near !== undefined) throw fail(attribute, `is not a JDL attribute: did you mean ${near}?`);
      warnings.add(`${source}: ${attribute.name} is not a JDL attribute Pilothouse knows: kept with the job, unused`);
    } else if (!kept.startsWith('Parameter')) {
      warnings.add(`${source}: ${kept} has no effect in Pilothouse: kept with the job, unused`);
    }
    extraFields[kept ?? attribute.name] = plain(attribute.value);
  }

  const text = (name: (typeof KNOWN)[number]): string | undefined => {
    const attribute = known.get(name);
    if (attribute === undefined) return undefined;
    const value = attribute.value;
    if (value.kind === 'string') return value.value;
    if (value.kind === 'number') return value.text;
    throw fail(attribute, 'must be a string');
  };
  const list = (...names: (typeof KNOWN)[number][]): string[] => {
    const out: string[] = [];
    for (const name of names) {
      const attribute = known.get(name);
      if (attribute === undefined) continue;
      const items = attribute.value.kind === 'list' ? attribute.value.items : [attribute.value];
      for (const item of items) {
        if (item.kind === 'string' || item.kind === 'number') out.push(item.kind === 'string' ? item.value : item.text);
        else throw fail(attribute, 'must be a string or a list of strings');
      }
    }
    return out;
  };
  const integer = (name: (typeof KNOWN)[number]): number | undefined => {
    const attribute = known.get(name);
    if (attribute === undefined) return undefined;
    const value = attribute.value;
    const number = value.kind === 'number' ? value.value : value.kind === 'string' ? Number(value.value) : NaN;
    if (!Number.isInteger(number)) throw fail(attribute, 'must be a whole number');
    return number;
  };
  const flag = (name: (typeof KNOWN)[number]): boolean => {
    const attribute = known.get(name);
    if (attribute === undefined) return false;
    const value = attribute.value;
    if (value.kind === 'boolean') return value.value;
    if (value.kind === 'string' && /^(yes|no|true|false)$/i.test(value.value)) return /^(yes|true)$/i.test(value.value);
    throw fail(attribute, 'must be true or false');
  };

  const executableAttribute = known.get('Executable');
  if (executableAttribute === undefined) {
    throw new PilothouseError('JDL_INVALID', `${source}: Executable is missing`, { field: 'Executable' });
  }
  const executable = text('Executable') ?? '';
  if (executable.trim() === '') throw fail(executableAttribute, 'must not be empty');

  const localInputFiles: string[] = [];
  const inputSandbox: string[] = [];
  for (const entry of list('InputSandbox')) {
    if (/^(LFN|SB):/i.test(entry)) {
      throw fail(
        known.get('InputSandbox') as JdlAttribute,
        `names ${entry}: grid storage (LFN:) and sandboxes of a DIRAC installation (SB:) cannot be fetched here; ` +
          'list the local file instead (it is uploaded), or give grid files as InputData',
      );
    }
    if (/^sha256:/.test(entry)) inputSandbox.push(entry);
    else localInputFiles.push(entry);
  }

  const program = command(executable.trim(), text('Arguments') ?? '', localInputFiles, warnings, source);
  const sites = list('Site').filter((site) => site !== '' && site.toUpperCase() !== 'ANY');
  const processors = integer('NumberOfProcessors');
  const minProcessors = integer('MinNumberOfProcessors') ?? processors ?? 1;
  const maxProcessors = integer('MaxNumberOfProcessors') ?? processors ?? minProcessors;
  const maxRamGB = integer('MaxRAM');
  const cpuTime = integer('CPUTime');
  const environment: Record<string, string> = {};
  for (const entry of list('ExecutionEnvironment')) {
    const equals = entry.indexOf('=');
    if (equals <= 0)
      throw fail(known.get('ExecutionEnvironment') as JdlAttribute, `entry "${entry}" is not NAME=value`);
    environment[entry.slice(0, equals)] = decodeURIComponent(entry.slice(equals + 1));
  }
  const platform = text('Platform');

  const description: JobDescriptionInput = {
    name: text('JobName') ?? 'Name',
    executable: program.executable,
    arguments: program.arguments,
    environment,
    inputSandbox,
    outputSandbox: list('OutputSandbox'),
    ...(text('StdOutput') !== undefined && { stdout: text('StdOutput') }),
    ...(text('StdError') !== undefined && { stderr: text('StdError') }),
    inputData: list('InputData'),
    ...(text('JobGroup') !== undefined && { jobGroup: text('JobGroup') }),
    extraFields: extraFields as JobDescriptionInput['extraFields'],
    ...(text('JobType') !== undefined && { jobType: text('JobType') }),
    ...(integer('Priority') !== undefined && { priority: integer('Priority') }),
    requirements: {
      cores: { min: minProcessors, max: maxProcessors },
      wholeNode: flag('WholeNode'),
      ...(maxRamGB !== undefined && { memoryMB: maxRamGB * 1024 }),
      ...(cpuTime !== undefined && { cpuWork: cpuTime }),
      ...(platform !== undefined && { platform: nativePlatform(platform) }),
      sites,
      bannedSites: list('BannedSite', 'BannedSites'),
      ces: list('GridCE'),
      tags: list('Tags', 'Tag'),
    },
  };
  return { description, localInputFiles };
}

/**
 * DIRAC runs `Executable Arguments` through a shell. Plain words and quotes are split here and the
 * program run directly; arguments with shell syntax ($VAR, pipes, redirections, globs) go through
 * `/bin/sh -c` as DIRAC would. An executable shipped in the input sandbox is run from the job directory.
 */
function command(
  executable: string,
  argumentText: string,
  localInputFiles: string[],
  warnings: Set<string>,
  source: string,
): { executable: string; arguments: string[] } {
  const shipped = !executable.includes('/') && localInputFiles.some((file) => file.split('/').at(-1) === executable);
  const program = shipped ? `./${executable}` : executable;
  const words = parseShellWords(argumentText, (name) => `$${name}`);
  const plain = words.every((word): word is string => typeof word === 'string') && !/[$`]/.test(argumentText);
  if (plain) return { executable: program, arguments: words as string[] };
  warnings.add(`${source}: Arguments use shell syntax: run through /bin/sh -c, as DIRAC runs them`);
  return { executable: '/bin/sh', arguments: ['-c', `${program} ${argumentText}`] };
}

/** DIRAC platforms name an OS, an architecture and a libc (Linux_x86_64_glibc-2.17): the architecture is what a pilot can check. */
function nativePlatform(platform: string): string {
  const arch = /(x86_64|aarch64|ppc64le|riscv64)(-v[1-4])?/.exec(platform);
  return arch ? arch[0] : platform;
}

function plain(value: JdlValue): unknown {
  switch (value.kind) {
    case 'string':
    case 'number':
    case 'boolean':
      return value.value;
    case 'expression':
      return value.text;
    case 'list':
      return value.items.map(plain);
    case 'ad':
      return Object.fromEntries(value.attributes.map((attribute) => [attribute.name, plain(attribute.value)]));
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    let diagonal = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j += 1) {
      const above = row[j] as number;
      row[j] = Math.min(above + 1, (row[j - 1] as number) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] as number;
}
