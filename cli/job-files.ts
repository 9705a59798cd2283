/** Job description files as the CLI reads them: JSON (one job or an array) and DIRAC JDL. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PilothouseError } from '../shared/errors.ts';
import { parseJdl } from '../shared/jdl/jdl-job.ts';

/** Jobs one JDL may expand to on this side (the matcher applies its own --max-jobs-per-submission). */
const MAX_LOCAL_EXPANSION = 1_000_000;

/** A job read from a file, with the local input files its sandbox still needs (relative to `baseDir`). */
export interface ReadJob {
  description: Record<string, unknown>;
  baseDir: string;
  localInputFiles: string[];
}

export async function readText(file: string): Promise<string> {
  try {
    return file === '-'
      ? await new Response(process.stdin as unknown as ReadableStream).text()
      : await readFile(file, 'utf8');
  } catch (error) {
    throw new PilothouseError('CONFIG_INVALID', `cannot read ${file}: ${(error as Error).message}`, { field: 'file' });
  }
}

/** JSON files (one job or an array; inputSandbox entries other than sha256:... are local files) and JDL files. */
export async function readJobs(files: string[], warn: (message: string) => void): Promise<ReadJob[]> {
  const all: ReadJob[] = [];
  for (const file of files) {
    const text = await readText(file);
    const baseDir = file === '-' ? process.cwd() : path.dirname(path.resolve(file));
    if (file.toLowerCase().endsWith('.jdl')) {
      const parsed = parseJdl(text, { source: file, maxJobs: MAX_LOCAL_EXPANSION });
      parsed.warnings.forEach(warn);
      for (const job of parsed.jobs) {
        all.push({ description: { ...job.description }, baseDir, localInputFiles: job.localInputFiles });
      }
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new PilothouseError('BAD_JSON', `${file} is not valid JSON: ${(error as Error).message}`, {
        field: 'file',
      });
    }
    for (const item of Array.isArray(parsed) ? parsed : [parsed]) {
      const description = { ...(item as Record<string, unknown>) };
      const entries = Array.isArray(description['inputSandbox']) ? (description['inputSandbox'] as unknown[]) : [];
      const isRef = (entry: unknown) => typeof entry === 'string' && entry.startsWith('sha256:');
      if (entries.length > 0) description['inputSandbox'] = entries.filter(isRef);
      all.push({ description, baseDir, localInputFiles: entries.filter((entry) => !isRef(entry)).map(String) });
    }
  }
  return all;
}
