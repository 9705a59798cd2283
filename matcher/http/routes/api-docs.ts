/**
 * The API described: `GET /api/openapi.json` (built from the router's table, see openapi.ts) and
 * `GET /api/docs`, a page that renders it with Swagger UI. Swagger UI's files come from the
 * swagger-ui-dist package, served by name from a fixed list (nothing else on disk is reachable).
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { createRequire } from 'node:module';
import path from 'node:path';
import pkg from '../../../package.json' with { type: 'json' };
import { PilothouseError } from '../../../shared/errors.ts';
import { buildOpenApiDocument } from '../openapi.ts';
import type { Route } from '../router.ts';

const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Pilothouse API</title>
  <link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
  <div id="api"></div>
  <script src="/api/docs/swagger-ui-bundle.js"></script>
  <script src="/api/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({ url: '/api/openapi.json', dom_id: '#api', deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout' });
  </script>
</body>
</html>
`;

/** `routes()` is read at each request, so the document lists every route registered by then. */
export function apiDocsRoutes(routes: () => readonly Route[]): Route[] {
  let assetDir: string | null = null;
  const assetPath = (name: string): string => {
    assetDir ??= path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
    return path.join(assetDir, name);
  };
  return [
    {
      method: 'GET',
      path: '/api/openapi.json',
      policy: 'public',
      summary: 'this API as an OpenAPI 3.1 document, built from the schemas that validate each request',
      async handler() {
        return { status: 200, json: buildOpenApiDocument(routes(), pkg.version) };
      },
    },
    {
      method: 'GET',
      path: '/api/docs',
      policy: 'public',
      summary: 'the OpenAPI document as a browsable page (Swagger UI)',
      docs: { answer: { status: 200, description: 'an HTML page', contentType: 'text/html' } },
      async handler() {
        return {
          status: 200,
          stream: Readable.from([PAGE]),
          headers: { 'content-type': 'text/html; charset=utf-8' },
        };
      },
    },
    {
      method: 'GET',
      path: '/api/docs/:asset',
      policy: 'public',
      summary: "the page's script and style files (Swagger UI)",
      docs: { answer: { status: 200, description: 'a static file', contentType: 'text/javascript' } },
      async handler({ params }) {
        const name = params.asset ?? '';
        const type = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
        if (type === undefined) throw new PilothouseError('ROUTE_NOT_FOUND', `no file ${name} here`);
        return {
          status: 200,
          stream: createReadStream(assetPath(name)),
          headers: { 'content-type': type, 'cache-control': 'max-age=3600' },
        };
      },
    },
  ];
}
