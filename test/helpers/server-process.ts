/**
 * `pilothouse server` as an operator starts it (dist/cli.mjs in a child process on port 0); resolves
 * with the URL it prints once listening, rejects with its stderr if it exits first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI } from './cli-process.ts';

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** What the server wrote to stderr so far (its log, at the level asked). */
  log(): string;
}

export async function startServerProcess(options: {
  dataDir: string;
  db?: string;
  /** host:port to listen on (default 127.0.0.1:0); a fixed port lets a restarted matcher keep its URL. */
  listen?: string;
  /** More `server` options. */
  args?: string[];
}): Promise<ServerProcess> {
  const args = [
    CLI,
    'server',
    '--data-dir',
    options.dataDir,
    '--listen',
    options.listen ?? '127.0.0.1:0',
    '--log-level',
    'warn',
  ];
  if (options.db) args.push('--db', options.db);
  args.push(...(options.args ?? []));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(stderr);
      if (match?.[1]) resolve(match[1]);
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}) before listening: ${stderr}`)));
  });
  return { url, child, log: () => stderr };
}
