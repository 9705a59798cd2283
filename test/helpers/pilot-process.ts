/** Runs dist/pilot.mjs as a real child process against a test matcher. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PILOT_BUNDLE = fileURLToPath(new URL('../../dist/pilot.mjs', import.meta.url));

export interface PilotProcess {
  child: ChildProcess;
  /** Resolves with the exit code when the process ends. */
  exited: Promise<number | null>;
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function spawnPilot(options: {
  matcherUrl: string;
  /** A pilot token (--token-file), or with `secret`, a one-time pilot secret (--secret-file). */
  token: string;
  secret?: boolean;
  args?: string[];
  bundle?: string;
  cwd?: string;
  /** Run the pilot under this account (the test runs as root): its directory, files and bundle are given to it. */
  runAs?: { uid: number; gid: number };
}): Promise<PilotProcess & { dir: string; tokenFile: string }> {
  let bundle = options.bundle ?? PILOT_BUNDLE;
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run npm run build first`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ph-pilot-'));
  const tokenFile = path.join(dir, options.secret ? 'pilot.secret' : 'pilot.token');
  await writeFile(tokenFile, options.token, { mode: 0o600 });
  const { runAs } = options;
  if (runAs !== undefined) {
    // The checkout may sit below directories closed to other users: the account gets its own copy.
    const copy = path.join(dir, 'pilot.mjs');
    await copyFile(bundle, copy);
    bundle = copy;
    for (const file of [dir, tokenFile, copy]) await chown(file, runAs.uid, runAs.gid);
  }
  const child = spawn(
    process.execPath,
    [
      bundle,
      '--matcher',
      options.matcherUrl,
      options.secret ? '--secret-file' : '--token-file',
      tokenFile,
      '--workdir',
      path.join(dir, 'work'),
      '--log-level',
      'info',
      ...(options.args ?? []),
    ],
    { cwd: options.cwd ?? dir, stdio: ['ignore', 'pipe', 'pipe'], ...(runAs ?? {}) },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return {
    dir,
    tokenFile,
    child,
    exited,
    log: () => output,
    async stop(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
