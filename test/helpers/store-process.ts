/** The parent side of sqlite-store-process.ts: a store whose every call runs in another process. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PilothouseError, isErrorCode } from '../../shared/errors.ts';

const CHILD = fileURLToPath(new URL('./sqlite-store-process.ts', import.meta.url));

export async function sqliteStoreInProcess<T extends { close(): Promise<void> }>(
  kind: 'jobs' | 'credentials' | 'login' | 'schedules',
  file: string,
): Promise<T> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, kind, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: unknown): void }>();
  let nextId = 0;
  await new Promise<void>((resolve, reject) => {
    lines.once('line', (line) => (line === 'ready' ? resolve() : reject(new Error(`store process said ${line}`))));
    child.once('exit', (code) => reject(new Error(`store process exited (${code})`)));
  });
  lines.on('line', (line) => {
    const answer = JSON.parse(line) as { id: number; result?: unknown; error?: { code?: string; message?: string } };
    const waiter = pending.get(answer.id);
    pending.delete(answer.id);
    if (!answer.error) waiter?.resolve(answer.result);
    else
      waiter?.reject(
        isErrorCode(answer.error.code)
          ? new PilothouseError(answer.error.code, answer.error.message ?? '')
          : new Error(answer.error.message),
      );
  });
  const call = (method: string, args: unknown[]): Promise<unknown> =>
    new Promise((resolve, reject) => {
      nextId += 1;
      pending.set(nextId, { resolve, reject });
      child.stdin.write(`${JSON.stringify({ id: nextId, method, args })}\n`);
    });
  return new Proxy({} as T, {
    get(_target, property) {
      if (property === 'then') return undefined;
      if (property === 'close') {
        return async () => {
          child.stdin.end();
          if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
        };
      }
      return (...args: unknown[]) => call(String(property), args);
    },
  });
}
