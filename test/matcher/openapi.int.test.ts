/**
 * /api/openapi.json on a real matcher: a valid OpenAPI 3.1 document (checked by an OpenAPI schema
 * validator) that lists every registered route, with a request body for every route that takes one
 * (built from the zod schema its handler validates with); /api/docs renders it and serves only its
 * own files.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import { startTestMatcher, type TestMatcher } from '../helpers/matcher.ts';

let m: TestMatcher;
let doc: {
  openapi: string;
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: any }> }; security?: [] }>>;
};
before(async () => {
  m = await startTestMatcher();
  const response = await fetch(`${m.url}/api/openapi.json`);
  assert.equal(response.status, 200);
  doc = (await response.json()) as typeof doc;
});
after(() => m.close());

it('is a valid OpenAPI 3.1 document', async () => {
  const result = await new Validator().validate(doc as unknown as Parameters<Validator['validate']>[0]);
  assert.equal(result.valid, true, JSON.stringify(result.errors, null, 1)?.slice(0, 2000));
  assert.equal(doc.openapi, '3.1.0');
});

it('lists every registered route; every route that reads a body describes it', () => {
  const routes = m.matcher.router.routes();
  assert.ok(routes.length > 40);
  for (const route of routes) {
    const path = route.path.replace(/:(\w+)/g, '{$1}');
    const operation = doc.paths[path]?.[route.method.toLowerCase()];
    assert.ok(operation, `${route.method} ${route.path} is in the document`);
    const takesBody = ['POST', 'PUT', 'PATCH'].includes(route.method) && route.docs?.body !== 'none';
    if (takesBody) assert.ok(operation.requestBody, `${route.method} ${route.path} describes its body`);
    if (route.policy === 'public') assert.deepEqual(operation.security, [], `${route.path} needs no token`);
  }
  const documented = Object.values(doc.paths).reduce((n, methods) => n + Object.keys(methods).length, 0);
  assert.equal(documented, routes.length, 'and nothing else');
});

it('request bodies come from the validating schemas', () => {
  const search = doc.paths['/api/jobs/search']?.post?.requestBody?.content['application/json']?.schema;
  assert.deepEqual(Object.keys(search.properties).sort(), [
    'cursor',
    'group',
    'ids',
    'jobType',
    'owner',
    'page',
    'parameters',
    'perPage',
    'pilotId',
    'search',
    'site',
    'sort',
    'status',
    'vo',
  ]);
  assert.ok(JSON.stringify(search).includes('"last hours"'), 'the operators are listed');
  const submit = doc.paths['/api/jobs']?.post?.requestBody?.content;
  assert.ok(submit?.['application/json'] && submit['text/x-jdl'], 'JSON and JDL');
  assert.ok(doc.paths['/api/sandboxes/{ref}']?.put?.requestBody?.content['application/gzip']);
});

it('/api/docs renders the document with its own files only', async () => {
  const page = await fetch(`${m.url}/api/docs`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  const html = await page.text();
  assert.match(html, /\/api\/openapi\.json/);
  const script = await fetch(`${m.url}/api/docs/swagger-ui-bundle.js`);
  assert.equal(script.status, 200);
  assert.ok((await script.text()).length > 100_000, 'the Swagger UI bundle');
  for (const name of ['..%2F..%2Fpackage.json', 'index.html', 'package.json']) {
    const refused = await fetch(`${m.url}/api/docs/${name}`);
    assert.equal(refused.status, 404, name);
  }
});
