/** A real matcher on port 0 with a fresh data directory (and SQLite file) per call. */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Property } from '../../shared/auth/claims.ts';
import type { Clock } from '../../shared/clock.ts';
import { silentLogger, type Logger } from '../../shared/logger.ts';
import { compileMatcherConfig, type MatcherConfig, type RawMatcherConfig } from '../../matcher/config.ts';
import { startMatcher, type RunningMatcher } from '../../matcher/server.ts';
import type { PolicyDocument } from '../../matcher/matching/scheduling-policy.ts';

export interface TestMatcher {
  matcher: RunningMatcher;
  url: string;
  dataDir: string;
  adminToken: string;
  userToken(user: string, vo?: string, properties?: Property[], group?: string): Promise<string>;
  /** A generic pilot token (GenericPilot), or one bound to a stamp when `stamp` is given. */
  pilotToken(vo?: string, site?: string, stamp?: string): Promise<string>;
  api(method: string, urlPath: string, options?: ApiOptions): Promise<ApiResponse>;
  close(): Promise<void>;
}

export interface ApiOptions {
  token?: string | null;
  json?: unknown;
  body?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
}

export interface ApiResponse {
  status: number;
  body: any;
  headers: Headers;
}

export interface TestMatcherOptions {
  heartbeatIntervalSec?: number;
  logger?: Logger;
  clock?: Clock;
  /** More raw options (TLS, OIDC configuration...), as the server's flags would give them. */
  raw?: Partial<RawMatcherConfig>;
  /** Compiled values to override (short lifetimes, small limits). */
  config?: Partial<MatcherConfig>;
  /** Reuse a data directory (e.g. one prepared by the test); it is still removed on close. */
  dataDir?: string;
  /** A scheduling policy to publish at start (what `server --policy FILE` does). */
  policy?: PolicyDocument;
  /** fetch options for https (e.g. an undici dispatcher that trusts the test CA). */
  fetchInit?: Record<string, unknown>;
}

export async function startTestMatcher(options: TestMatcherOptions = {}): Promise<TestMatcher> {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'ph-matcher-')));
  const config = {
    ...compileMatcherConfig({
      dataDir,
      listen: '127.0.0.1:0',
      heartbeatIntervalSec: options.heartbeatIntervalSec,
      ...options.raw,
    }),
    ...options.config,
  };
  const matcher = await startMatcher(config, {
    logger: options.logger ?? silentLogger(),
    ...(options.clock && { clock: options.clock }),
    ...(options.policy && { policy: options.policy }),
  });
  const adminToken = (await readFile(matcher.adminTokenPath, 'utf8')).trim();
  const api = async (method: string, urlPath: string, o: ApiOptions = {}): Promise<ApiResponse> => {
    const headers: Record<string, string> = { ...o.headers };
    // The current admin token (a test may replace it after admin.token was renewed).
    const token = o.token === undefined ? testMatcher.adminToken : o.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | Buffer | undefined = o.body;
    if (o.json !== undefined) body = JSON.stringify(o.json);
    if (body !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
    const response = await fetch(`${matcher.url}${urlPath}`, { method, headers, body, ...options.fetchInit });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, body: parsed, headers: response.headers };
  };
  const testMatcher: TestMatcher = {
    matcher,
    url: matcher.url,
    dataDir,
    adminToken,
    userToken: (user, vo = 'vo-a', properties = ['NormalUser'], group = `${vo}_user`) =>
      matcher.tokens.issue({ kind: 'user', subject: user, vo, group, properties, ttlSec: 3600 }),
    pilotToken: (vo = 'local', site = '*', stamp?: string) =>
      matcher.tokens.issue({
        kind: 'pilot',
        subject: stamp ?? `pilots.${vo}`,
        vo,
        group: `${vo}_pilot`,
        properties: stamp === undefined ? ['GenericPilot'] : [],
        site,
        pilotStamp: stamp,
        ttlSec: 3600,
      }),
    api,
    async close() {
      await matcher.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return testMatcher;
}
