/** docs/operations.md lists every option of the matcher, the pilot and the site director (read from their --help). */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { runCli } from '../helpers/cli-process.ts';

const DOC = new URL('../../docs/operations.md', import.meta.url);

for (const command of ['server', 'pilot', 'site-director']) {
  it(`every option of pilothouse ${command} is in docs/operations.md`, async () => {
    const help = await runCli([command, '--help']);
    assert.equal(help.code, 0, help.stderr);
    const options = [...help.stdout.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z-]*)/gm)].map((m) => m[1] as string);
    assert.ok(options.length >= 5, `options found in ${command} --help`);
    const doc = await readFile(DOC, 'utf8');
    const missing = options.filter((option) => option !== '--help' && !doc.includes(`\`${option}`));
    assert.deepEqual(missing, [], `options of ${command} not documented`);
  });
}
