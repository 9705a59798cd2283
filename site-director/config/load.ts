/**
 * Reads a site-director configuration file (YAML, or JSON, which YAML reads too) and compiles it ONCE
 * into a DirectorConfig: defaults filled in, inheritance applied (site → CE → queue for VOs, caps and
 * pilot options; tags and required tags are unions), relative paths resolved against the file's
 * directory, credential files checked to exist. Any refusal is CONFIG_INVALID naming the file, the
 * line and the field, e.g. `sites.yaml:14: sites.0.ces.1.queues.0.maxCores: ...`; nothing starts.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import cron from 'node-cron';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { parseMatcherUrls } from '../../shared/endpoints.ts';
import { PilothouseError } from '../../shared/errors.ts';
import { firstIssue } from '../../shared/validation.ts';
import type { BackendType, QueueSlot } from '../../shared/protocol/site-director.ts';
import type { PilotJobResources } from '../backends/backend.ts';
import { directorFileSchema, type CeFileConfig, type DirectorFileConfig } from './schema.ts';

export const DEFAULT_CAPS = { maxWaitingPilots: 10, maxRunningPilots: 100, maxPilotsPerCycle: 10 } as const;
export const DEFAULT_PILOT_IDLE_TIMEOUT_SEC = 300;
export const DEFAULT_HTCONDOR_CE_PORT = 9619;

export interface SshTargetConfig {
  host: string;
  port: number;
  user: string | null;
  keyFile: string | null;
  knownHostsFile: string | null;
  options: string[];
}

export type BackendConfig =
  | { type: 'local'; workDir: string }
  | { type: 'ssh'; target: SshTargetConfig; workDir: string }
  | {
      type: 'slurm';
      outputDir: string;
      account: string | null;
      submitOptions: string[];
      accounting: boolean;
      login: SshTargetConfig | null;
    }
  | {
      type: 'htcondor';
      pool: string;
      mode: 'remote-schedd' | 'local-schedd';
      tokenFile: string | null;
      workDir: string;
      extraSubmit: string[];
      login: SshTargetConfig | null;
    }
  | {
      type: 'arc';
      url: string;
      caFile: string | null;
      certFile: string | null;
      keyFile: string | null;
      tokenFile: string | null;
    };

export interface QueueCaps {
  maxWaitingPilots: number;
  maxRunningPilots: number;
  maxPilotsPerCycle: number;
}

export interface QueuePilotOptions {
  idleTimeoutSec: number;
  extraArgs: string[];
  nodePaths: string[];
  bundlePaths: string[];
  caFile: string | null;
}

export interface QueueConfig {
  /** `site/ce/queue`: unique in the director. */
  key: string;
  site: string;
  ce: string;
  name: string;
  /** The batch system's name for it (a SLURM partition may differ from the queue's name). */
  batchQueue: string;
  vos: string[];
  /** What one pilot of the queue offers (the demand is computed for this). */
  slot: QueueSlot;
  resources: PilotJobResources;
  caps: QueueCaps;
  pilot: QueuePilotOptions;
}

export interface CeConfig {
  /** `site/ce` */
  key: string;
  site: string;
  name: string;
  type: BackendType;
  backend: BackendConfig;
  queues: QueueConfig[];
}

export interface DirectorConfig {
  file: string;
  name: string;
  pilotMatcherUrl: string | null;
  schedule: string;
  parallelCes: number;
  ceTimeoutMs: number;
  lostAfterMs: number;
  stateDir: string;
  secretTtlSec: number | null;
  throttles: {
    ceErrorBackoffMs: { initialMs: number; maxMs: number };
    emptyPilots: { threshold: number; initialMs: number; maxMs: number };
    missedPilots: { windowMs: number; max: number };
  };
  ces: CeConfig[];
}

export function loadDirectorConfig(file: string): DirectorConfig {
  const resolved = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(resolved, 'utf8');
  } catch (error) {
    throw new PilothouseError(
      'CONFIG_INVALID',
      `${file}: cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      {
        field: 'config',
        file,
      },
    );
  }
  return parseDirectorConfig(text, resolved, file);
}

/** `shownAs`: how errors name the file (as the operator typed it). */
export function parseDirectorConfig(text: string, file: string, shownAs = file): DirectorConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax) {
    const line = syntax.linePos?.[0]?.line;
    throw invalid(shownAs, line, '', syntax.message.split('\n')[0] ?? 'not YAML or JSON');
  }
  const parsed = directorFileSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const { field, message } = firstIssue(parsed.error);
    throw invalid(shownAs, lineOf(doc, lineCounter, field), field, message);
  }
  const at = (field: string): number | undefined => lineOf(doc, lineCounter, field);
  return {
    ...compile(parsed.data, path.dirname(file), (field, message) => invalid(shownAs, at(field), field, message)),
    file,
  };
}

function invalid(file: string, line: number | undefined, field: string, message: string): PilothouseError {
  const where = line === undefined ? file : `${file}:${line}`;
  return new PilothouseError('CONFIG_INVALID', `${where}: ${field ? `${field}: ` : ''}${message}`, {
    field: field || 'config',
    file,
    ...(line !== undefined && { line }),
  });
}

/** The line of the deepest node of the document that the field path reaches. */
function lineOf(doc: Document, lineCounter: LineCounter, field: string): number | undefined {
  const keys: (string | number)[] =
    field === '' ? [] : field.split('.').map((key) => (/^\d+$/.test(key) ? Number(key) : key));
  for (let depth = keys.length; depth >= 0; depth -= 1) {
    const node = depth === 0 ? doc.contents : doc.getIn(keys.slice(0, depth), true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range) return lineCounter.linePos(range[0]).line;
  }
  return undefined;
}

type Fail = (field: string, message: string) => PilothouseError;

function compile(raw: DirectorFileConfig, baseDir: string, fail: Fail): DirectorConfig {
  if (!cron.validate(raw.cycle.schedule))
    throw fail('cycle.schedule', `'${raw.cycle.schedule}' is not a cron expression`);
  const resolve = (file: string): string => path.resolve(baseDir, file);
  const mustRead = (field: string, file: string | undefined): string | null => {
    if (file === undefined) return null;
    const full = resolve(file);
    try {
      accessSync(full, constants.R_OK);
    } catch {
      throw fail(field, `cannot read ${full}`);
    }
    return full;
  };
  const stateDir = resolve(raw.cycle.stateDir);
  const ces: CeConfig[] = [];
  const siteNames = new Set<string>();
  raw.sites.forEach((site, siteIndex) => {
    if (siteNames.has(site.name)) throw fail(`sites.${siteIndex}.name`, `site ${site.name} is listed twice`);
    siteNames.add(site.name);
    const ceNames = new Set<string>();
    site.ces.forEach((ce, ceIndex) => {
      const where = `sites.${siteIndex}.ces.${ceIndex}`;
      if (ceNames.has(ce.name)) throw fail(`${where}.name`, `CE ${ce.name} is listed twice at ${site.name}`);
      ceNames.add(ce.name);
      const backend = compileBackend(ce, where, stateDir, site.name, resolve, mustRead, fail);
      const queueNames = new Set<string>();
      const queues = ce.queues.map((queue, queueIndex) => {
        const at = `${where}.queues.${queueIndex}`;
        if (queueNames.has(queue.name)) throw fail(`${at}.name`, `queue ${queue.name} is listed twice on ${ce.name}`);
        queueNames.add(queue.name);
        const vos = queue.vos ?? ce.vos ?? site.vos;
        if (!vos) throw fail(`${at}.vos`, 'no VO: give vos on the queue, its CE or its site');
        const pilot = { ...raw.pilot, ...ce.pilot, ...queue.pilot };
        const cores = pilot.coresPerPilot ?? queue.maxCores;
        if (cores > queue.maxCores) {
          throw fail(
            `${at}.pilot.coresPerPilot`,
            `${cores} cores per pilot is more than the queue's maxCores ${queue.maxCores}`,
          );
        }
        const memoryMB = pilot.memoryMB ?? queue.memoryMB;
        if (queue.memoryMB > 0 && memoryMB > queue.memoryMB) {
          throw fail(
            `${at}.pilot.memoryMB`,
            `${memoryMB} MB per pilot is more than the queue's memoryMB ${queue.memoryMB}`,
          );
        }
        const tags = [...new Set([...ce.tags, ...queue.tags])];
        const requiredTags = [...new Set([...ce.requiredTags, ...queue.requiredTags])];
        const slot: QueueSlot = {
          cores,
          memoryMB,
          wallTimeSec: queue.wallTimeSec ?? null,
          gpus: queue.gpus,
          gpuModel: queue.gpuModel ?? null,
          gpuMemoryMB: queue.gpuMemoryMB ?? null,
          platform: queue.platform ?? null,
          tags,
          requiredTags,
          wholeNode: queue.wholeNode,
          diskMB: queue.diskMB ?? null,
          cpuPower: queue.cpuPower ?? null,
        };
        return {
          key: `${site.name}/${ce.name}/${queue.name}`,
          site: site.name,
          ce: ce.name,
          name: queue.name,
          batchQueue: queue.batchQueue ?? (ce.type === 'slurm' ? ce.slurm.partition : undefined) ?? queue.name,
          vos,
          slot,
          resources: { cores, memoryMB, wallTimeSec: slot.wallTimeSec, gpus: queue.gpus, wholeNode: queue.wholeNode },
          caps: {
            maxWaitingPilots: queue.maxWaitingPilots ?? ce.maxWaitingPilots ?? DEFAULT_CAPS.maxWaitingPilots,
            maxRunningPilots: queue.maxRunningPilots ?? ce.maxRunningPilots ?? DEFAULT_CAPS.maxRunningPilots,
            maxPilotsPerCycle: queue.maxPilotsPerCycle ?? ce.maxPilotsPerCycle ?? DEFAULT_CAPS.maxPilotsPerCycle,
          },
          pilot: {
            idleTimeoutSec: pilot.idleTimeoutSec ?? DEFAULT_PILOT_IDLE_TIMEOUT_SEC,
            extraArgs: pilot.extraArgs ?? [],
            nodePaths: pilot.nodePaths ?? [],
            bundlePaths: pilot.bundlePaths ?? [],
            caFile: pilot.caFile ?? null,
          },
        } satisfies QueueConfig;
      });
      ces.push({ key: `${site.name}/${ce.name}`, site: site.name, name: ce.name, type: ce.type, backend, queues });
    });
  });
  const t = raw.throttles;
  return {
    file: '',
    name: raw.name,
    pilotMatcherUrl:
      raw.pilotMatcherUrl === undefined ? null : parseMatcherUrls(raw.pilotMatcherUrl, 'pilotMatcherUrl').join(','),
    schedule: raw.cycle.schedule,
    parallelCes: raw.cycle.parallelCes,
    ceTimeoutMs: raw.cycle.ceTimeoutSec * 1000,
    lostAfterMs: raw.cycle.lostAfterSec * 1000,
    stateDir,
    secretTtlSec: raw.pilot.secretTtlSec ?? null,
    throttles: {
      ceErrorBackoffMs: { initialMs: t.ceErrors.initialBackoffSec * 1000, maxMs: t.ceErrors.maxBackoffSec * 1000 },
      emptyPilots: {
        threshold: t.emptyPilots.threshold,
        initialMs: t.emptyPilots.initialBackoffSec * 1000,
        maxMs: t.emptyPilots.maxBackoffSec * 1000,
      },
      missedPilots: { windowMs: t.missedPilots.windowSec * 1000, max: t.missedPilots.max },
    },
    ces,
  };
}

function compileBackend(
  ce: CeFileConfig,
  where: string,
  stateDir: string,
  site: string,
  resolve: (file: string) => string,
  mustRead: (field: string, file: string | undefined) => string | null,
  fail: Fail,
): BackendConfig {
  const target = (
    field: string,
    t: Omit<Extract<CeFileConfig, { type: 'ssh' }>['ssh'], 'workDir'>,
  ): SshTargetConfig => ({
    host: t.host,
    port: t.port,
    user: t.user ?? null,
    keyFile: mustRead(`${field}.keyFile`, t.keyFile),
    knownHostsFile: mustRead(`${field}.knownHostsFile`, t.knownHostsFile),
    options: t.options,
  });
  switch (ce.type) {
    case 'local':
      return {
        type: 'local',
        workDir: ce.local.workDir ? resolve(ce.local.workDir) : path.join(stateDir, 'pilots', site, ce.name),
      };
    case 'ssh':
      return { type: 'ssh', target: target(`${where}.ssh`, ce.ssh), workDir: ce.ssh.workDir };
    case 'slurm': {
      const login = ce.slurm.login ? target(`${where}.slurm.login`, ce.slurm.login) : null;
      return {
        type: 'slurm',
        // Here, a relative directory is the director's; on a login node, the remote user's home.
        outputDir: login ? ce.slurm.outputDir : resolve(ce.slurm.outputDir),
        account: ce.slurm.account ?? null,
        submitOptions: ce.slurm.submitOptions,
        accounting: ce.slurm.accounting,
        login,
      };
    }
    case 'htcondor': {
      const login = ce.htcondor.login ? target(`${where}.htcondor.login`, ce.htcondor.login) : null;
      return {
        type: 'htcondor',
        pool: ce.htcondor.pool ?? `${ce.name}:${DEFAULT_HTCONDOR_CE_PORT}`,
        mode: ce.htcondor.mode,
        tokenFile: mustRead(`${where}.htcondor.tokenFile`, ce.htcondor.tokenFile),
        workDir: login ? ce.htcondor.workDir : resolve(ce.htcondor.workDir),
        extraSubmit: ce.htcondor.extraSubmit,
        login,
      };
    }
    case 'arc': {
      const a = ce.arc;
      if ((a.certFile === undefined) !== (a.keyFile === undefined)) {
        throw fail(
          `${where}.arc.${a.certFile === undefined ? 'certFile' : 'keyFile'}`,
          'certFile and keyFile go together',
        );
      }
      if (a.certFile === undefined && a.tokenFile === undefined) {
        throw fail(`${where}.arc`, 'give the CE credentials: certFile and keyFile, or tokenFile');
      }
      return {
        type: 'arc',
        url: (a.url ?? `https://${ce.name}:443/arex/rest/1.0`).replace(/\/+$/, ''),
        caFile: mustRead(`${where}.arc.caFile`, a.caFile),
        certFile: mustRead(`${where}.arc.certFile`, a.certFile),
        keyFile: mustRead(`${where}.arc.keyFile`, a.keyFile),
        tokenFile: mustRead(`${where}.arc.tokenFile`, a.tokenFile),
      };
    }
  }
}
