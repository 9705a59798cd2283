/**
 * Where `pilothouse login` keeps its tokens: one JSON file (`$PILOTHOUSE_CREDENTIALS_FILE`, else
 * `$XDG_CONFIG_HOME/pilothouse/credentials.json`, else `~/.config/pilothouse/credentials.json`), mode
 * 0600, one entry per matcher URL. Written atomically (a temporary file renamed over it). Refreshing
 * rotates the refresh token and a spent one presented again revokes the sign-in, so two commands
 * refreshing at once would log each other out: refreshes take a lock file and re-read the entry first.
 */
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { PilothouseError } from '../shared/errors.ts';

const savedLoginSchema = z.object({
  user: z.string(),
  vo: z.string(),
  group: z.string(),
  accessToken: z.string(),
  accessExpiresAtMs: z.number(),
  refreshToken: z.string(),
  refreshExpiresAtMs: z.number(),
  tokenEndpoint: z.string(),
  revocationEndpoint: z.string(),
  issuer: z.string(),
});
const fileSchema = z.object({ version: z.literal(1), logins: z.record(z.string(), savedLoginSchema) });

export type SavedLogin = z.infer<typeof savedLoginSchema>;

/** A lock older than this was left by a command that died: it is taken over. */
const STALE_LOCK_MS = 30_000;
const LOCK_WAIT_MS = 15_000;

export function credentialsFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PILOTHOUSE_CREDENTIALS_FILE) return env.PILOTHOUSE_CREDENTIALS_FILE;
  const config = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(config, 'pilothouse', 'credentials.json');
}

/** The key of a matcher: its URL without a trailing slash. */
export const matcherKey = (url: string): string => url.replace(/\/+$/, '');

async function readAll(file: string): Promise<z.infer<typeof fileSchema>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, logins: {} };
    throw new PilothouseError('CONFIG_INVALID', `cannot read ${file}: ${(error as Error).message}`, {
      field: 'credentials',
    });
  }
  const parsed = fileSchema.safeParse(JSON.parse(text || '{}'));
  if (!parsed.success) {
    throw new PilothouseError(
      'CONFIG_INVALID',
      `${file} is not a Pilothouse credentials file: run pilothouse login again`,
      {
        field: 'credentials',
      },
    );
  }
  return parsed.data;
}

async function writeAll(file: string, content: z.infer<typeof fileSchema>): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  await rename(temporary, file);
}

export async function readSavedLogin(matcherUrl: string, env?: NodeJS.ProcessEnv): Promise<SavedLogin | null> {
  return (await readAll(credentialsFile(env))).logins[matcherKey(matcherUrl)] ?? null;
}

export async function saveLogin(matcherUrl: string, login: SavedLogin | null, env?: NodeJS.ProcessEnv): Promise<void> {
  const file = credentialsFile(env);
  const content = await readAll(file);
  if (login === null) delete content.logins[matcherKey(matcherUrl)];
  else content.logins[matcherKey(matcherUrl)] = login;
  await writeAll(file, content);
}

/** Runs `body` holding the credentials file's lock (other pilothouse commands wait for it). */
export async function withCredentialsLock<T>(body: () => Promise<T>, env?: NodeJS.ProcessEnv): Promise<T> {
  const lock = `${credentialsFile(env)}.lock`;
  await mkdir(path.dirname(lock), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(lock, 'wx', 0o600);
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const age = await stat(lock).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > STALE_LOCK_MS) await rm(lock, { force: true });
      else if (Date.now() > deadline) {
        throw new PilothouseError(
          'CONFIG_INVALID',
          `${lock} is held by another pilothouse command; remove it if none runs`,
          {
            field: 'credentials',
          },
        );
      } else await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  try {
    return await body();
  } finally {
    await rm(lock, { force: true });
  }
}
