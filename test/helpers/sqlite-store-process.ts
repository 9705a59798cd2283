/**
 * A SQLite store in a process of its own, driven over stdin/stdout: SQLite's concurrency is between
 * processes (one process's connections never run at the same time), so tests that must be able to
 * fail under concurrency put their competitors in processes like this one.
 *   node --import tsx test/helpers/sqlite-store-process.ts KIND FILE      (KIND: jobs | credentials | login | schedules)
 * Each stdin line `{"id", "method", "args"}` is answered by one stdout line `{"id", "result"}` or
 * `{"id", "error": {"code", "message"}}`; the first line printed is `ready`.
 */
import { createInterface } from 'node:readline';
import { openSqliteCredentialStore } from '../../matcher/store/sqlite/sqlite-credential-store.ts';
import { openSqliteJobStore } from '../../matcher/store/sqlite/sqlite-job-store.ts';
import { openSqliteLoginStore } from '../../matcher/store/sqlite/sqlite-login-store.ts';

const [kind, file] = process.argv.slice(2) as [string, string];
type Callable = Record<string, (...args: unknown[]) => Promise<unknown>>;
/** A job store's schedules (its close closes the job store). */
function schedulesOf(jobs: ReturnType<typeof openSqliteJobStore>): Callable {
  const schedules = jobs.schedules as unknown as Callable;
  return new Proxy({} as Callable, {
    get: (_target, method: string) =>
      method === 'close' ? () => jobs.close() : (...args: unknown[]) => schedules[method]?.apply(schedules, args),
  });
}
const store: Callable =
  kind === 'credentials'
    ? (openSqliteCredentialStore({ path: file }) as never)
    : kind === 'login'
      ? (openSqliteLoginStore({ path: file }) as never)
      : kind === 'schedules'
        ? schedulesOf(openSqliteJobStore({ path: file }))
        : (openSqliteJobStore({ path: file }) as never);
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const call = JSON.parse(line) as { id: number; method: string; args: unknown[] };
  const method = store[call.method];
  Promise.resolve()
    .then(() => (method as (...args: unknown[]) => Promise<unknown>).apply(store, call.args))
    .then(
      (result) => process.stdout.write(`${JSON.stringify({ id: call.id, result: result ?? null })}\n`),
      (error: { code?: string; message?: string }) =>
        process.stdout.write(
          `${JSON.stringify({ id: call.id, error: { code: error.code, message: error.message } })}\n`,
        ),
    );
});
lines.on('close', () => void (store.close as () => Promise<void>).call(store).then(() => process.exit(0)));
process.stdout.write('ready\n');
