/**
 * Resolves a job's output sandbox list (names and globs relative to the job directory) into the
 * files to pack. Patterns that are absolute or climb out with `..` are refused; patterns that match
 * nothing are reported as missing. The walk never follows symlinks (a matched symlink is packed as a
 * link, not as what it points to).
 */
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';

/** Always part of the output sandbox, first. */
export const STANDARD_OUTPUTS = ['std.out', 'std.err'] as const;
const MAX_WALK_ENTRIES = 100_000;

export interface OutputSelection {
  /** Relative POSIX paths, deduplicated, standard outputs first. */
  files: string[];
  missing: string[];
  refused: string[];
}

export function globToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const char = pattern[i] as string;
    if (char === '*') {
      if (pattern[i + 1] === '*') {
        const slash = pattern[i + 2] === '/';
        source += slash ? '(?:.*/)?' : '.*';
        i += slash ? 2 : 1;
      } else {
        source += '[^/]*';
      }
    } else if (char === '?') {
      source += '[^/]';
    } else if (char === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) {
        source += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, close);
      const negated = body.startsWith('!') || body.startsWith('^');
      if (negated) body = body.slice(1);
      source += `[${negated ? '^' : ''}${body.replace(/[\\\]]/g, '\\$&')}]`;
      i = close;
    } else {
      source += char.replace(/[.+^${}()|\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}$`);
}

function isGlob(pattern: string): boolean {
  return /[*?[]/.test(pattern);
}

/** Normalises a pattern to a relative POSIX path, or null when it would leave the directory. */
function normalisePattern(pattern: string): string | null {
  if (pattern.startsWith('/') || pattern.includes('\0')) return null;
  const segments = pattern.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.length === 0 || segments.includes('..')) return null;
  return segments.join('/');
}

async function walk(root: string): Promise<string[]> {
  const out: string[] = [];
  const pending = [''];
  while (pending.length > 0 && out.length < MAX_WALK_ENTRIES) {
    const relative = pending.pop() as string;
    let entries;
    try {
      entries = await readdir(path.join(root, relative), { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      const child = relative === '' ? entry.name : `${relative}/${entry.name}`;
      out.push(child);
      if (entry.isDirectory()) pending.push(child);
    }
  }
  return out;
}

async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch {
    return false;
  }
}

export async function selectOutputFiles(
  jobDir: string,
  patterns: readonly string[],
  standardOutputs: readonly string[] = STANDARD_OUTPUTS,
): Promise<OutputSelection> {
  const selected = new Set<string>();
  const missing: string[] = [];
  const refused: string[] = [];
  let tree: string[] | null = null;

  for (const pattern of [...standardOutputs, ...patterns]) {
    const normalised = normalisePattern(pattern);
    if (normalised === null) {
      refused.push(pattern);
      continue;
    }
    if (!isGlob(normalised)) {
      if (await exists(path.join(jobDir, normalised))) selected.add(normalised);
      else missing.push(pattern);
      continue;
    }
    tree ??= await walk(jobDir);
    const regexp = globToRegExp(normalised);
    const matches = tree.filter((candidate) => regexp.test(candidate)).sort();
    if (matches.length === 0) missing.push(pattern);
    for (const match of matches) selected.add(match);
  }
  // A directory and a file inside it would be packed twice: keep the directory only.
  const files = [...selected].filter(
    (file) => ![...selected].some((other) => other !== file && file.startsWith(`${other}/`)),
  );
  return { files, missing, refused };
}
