/** BENCHMARKS.md: each scenario owns a section between markers, rewritten by its latest run. */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineDescription } from './machine.ts';

const FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'BENCHMARKS.md');

/** A section's title, the date, the command that measured it and the machine. */
export function sectionHeader(title: string, command: string): string {
  return `## ${title}\n\nMeasured ${new Date().toISOString().slice(0, 10)} with \`${command}\` on:\n\n${machineDescription()}\n\n`;
}

export async function replaceSection(name: string, body: string): Promise<void> {
  const begin = `<!-- bench:${name}:begin -->`;
  const end = `<!-- bench:${name}:end -->`;
  let text = existsSync(FILE)
    ? await readFile(FILE, 'utf8')
    : '# Benchmarks\n\nFigures from `npm run bench` (medians and ratios measured side by side in one run; these machines are noisy).\n';
  const block = `${begin}\n${body.trim()}\n${end}`;
  const at = text.indexOf(begin);
  text =
    at >= 0
      ? text.slice(0, at) + block + text.slice(text.indexOf(end) + end.length)
      : `${text.trimEnd()}\n\n${block}\n`;
  await writeFile(FILE, text);
}
