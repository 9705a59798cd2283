/**
 * The web monitor, served by the matcher itself: `dist/web` (built by `npm run build` from `web/`)
 * at `/ui/`. Every view path answers the application's page (it routes in the browser); its files
 * come from `dist/web/assets` by name only (a name is letters, digits, `-`, `_` and one extension: no
 * path can leave the directory). Hashed file names are cached for a year, the page never.
 */
import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { PilothouseError } from '../../../shared/errors.ts';
import type { Reply, Route } from '../router.ts';

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};
const ASSET_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.(js|css|svg|png|woff2)$/;
/** The security headers of the application's page: its own scripts only, API calls to this origin. */
const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** dist/web beside the program (dist/cli.mjs), or the repository's dist/web when run from sources. */
export function defaultWebRoot(): string | null {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'web'), path.resolve(here, '..', '..', '..', 'dist', 'web')];
  return candidates.find((candidate) => existsSync(path.join(candidate, 'index.html'))) ?? null;
}

export function webAppRoutes(webRoot: string | null): Route[] {
  const page = async (): Promise<Reply> => {
    if (webRoot === null) {
      throw new PilothouseError('ROUTE_NOT_FOUND', 'the web monitor is not built here: run npm run build');
    }
    return { status: 200, stream: createReadStream(path.join(webRoot, 'index.html')), headers: PAGE_HEADERS };
  };
  const pageRoute = (routePath: string): Route => ({
    method: 'GET',
    path: routePath,
    policy: 'public',
    summary: 'the web monitor (the page; it asks for a sign-in and calls the API with it)',
    docs: { answer: { status: 200, description: 'an HTML page', contentType: 'text/html' } },
    handler: page,
  });
  return [
    {
      method: 'GET',
      path: '/',
      policy: 'public',
      summary: 'the web monitor is at /ui/',
      docs: { answer: { status: 302, description: 'to /ui/' } },
      async handler() {
        return { status: 302, stream: Readable.from([]), headers: { location: '/ui/' } };
      },
    },
    pageRoute('/ui'),
    pageRoute('/ui/'),
    pageRoute('/ui/:view'),
    {
      method: 'GET',
      path: '/ui/assets/:file',
      policy: 'public',
      summary: "the web monitor's script, style and image files",
      docs: { answer: { status: 200, description: 'a static file', contentType: 'text/javascript' } },
      async handler({ params }) {
        const name = params.file ?? '';
        const type = TYPES[path.extname(name)];
        if (webRoot === null || !ASSET_NAME.test(name) || type === undefined) {
          throw new PilothouseError('ROUTE_NOT_FOUND', `no file ${name}`);
        }
        const file = path.join(webRoot, 'assets', name);
        const found = await stat(file).catch(() => null);
        if (!found?.isFile()) throw new PilothouseError('ROUTE_NOT_FOUND', `no file ${name}`);
        return {
          status: 200,
          stream: createReadStream(file),
          headers: {
            'content-type': type,
            'content-length': String(found.size),
            'cache-control': 'public, max-age=31536000, immutable',
            'x-content-type-options': 'nosniff',
          },
        };
      },
    },
  ];
}
