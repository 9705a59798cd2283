/** Calls to the matcher's REST API with the session's token; errors carry the matcher's stable code. */
import { freshSession } from './session.ts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ApiAnswer<T> {
  status: number;
  body: T;
  headers: Headers;
}

export async function authHeader(): Promise<Record<string, string>> {
  const session = await freshSession();
  if (!session) throw new ApiError(401, 'TOKEN_MISSING', 'not signed in');
  return { authorization: `Bearer ${session.accessToken}` };
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<ApiAnswer<T>> {
  const headers: Record<string, string> = await authHeader();
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
  const text = await response.text();
  const parsed = text ? (JSON.parse(text) as unknown) : null;
  if (!response.ok) {
    const error = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(response.status, error?.code ?? 'HTTP_ERROR', error?.message ?? `HTTP ${response.status}`);
  }
  return { status: response.status, body: parsed as T, headers: response.headers };
}

/** A file the API serves to its owner (an output sandbox): fetched with the token, then saved. */
export async function download(path: string, fileName: string): Promise<void> {
  const response = await fetch(path, { headers: await authHeader() });
  if (!response.ok) throw new ApiError(response.status, 'DOWNLOAD_FAILED', `download failed (HTTP ${response.status})`);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * An action the user asked for, told back in one line: `done` and a reload of the view when the
 * matcher carried it out, else `refusedPrefix` and the matcher's reason (a role it lacks, say).
 */
export async function perform(
  request: Promise<unknown>,
  lines: { done: string; refusedPrefix: string },
  show: (line: string) => void,
  reload: () => unknown,
): Promise<void> {
  try {
    await request;
  } catch (failure) {
    show(`${lines.refusedPrefix}${(failure as Error).message}`);
    return;
  }
  show(lines.done);
  await reload();
}
