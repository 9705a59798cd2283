/**
 * The OpenAPI 3.1 document of the matcher's REST API, built from the router's own table: every
 * registered route appears, with its policy, its path parameters, and the zod schemas its handler
 * validates with (zod's JSON Schema output, input side: what a client sends). Errors share one
 * schema whose `code` lists every stable error code.
 */
import { z } from 'zod';
import { ERROR_CODES } from '../../shared/errors.ts';
import { POLICIES } from '../auth/policy.ts';
import type { Route } from './router.ts';

type JsonSchema = Record<string, unknown>;

/**
 * Turns zod schemas into JSON Schema for the document. Definitions zod puts under `$defs` (schemas
 * that refer to themselves) move to `components.schemas` under unique names, since a `$ref` to
 * `#/$defs/...` would point at the document's root.
 */
class SchemaWriter {
  readonly components: Record<string, JsonSchema> = {};
  #count = 0;

  of(schema: z.ZodType): JsonSchema {
    const converted = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
    const { $schema: _dialect, $defs, ...rest } = converted as JsonSchema & { $defs?: Record<string, JsonSchema> };
    if ($defs === undefined) return rest;
    const prefix = `Schema${(this.#count += 1)}_`;
    const rewrite = (value: JsonSchema): JsonSchema =>
      JSON.parse(
        JSON.stringify(value).replace(
          /"#\/\$defs\/([^"]+)"/g,
          (_all, name: string) => `"#/components/schemas/${prefix}${name}"`,
        ),
      ) as JsonSchema;
    for (const [name, definition] of Object.entries($defs)) this.components[`${prefix}${name}`] = rewrite(definition);
    return rewrite(rest);
  }
}

/** `/api/jobs/:id/kill` → `/api/jobs/{id}/kill`, with the parameter names. */
function openApiPath(path: string): { path: string; params: string[] } {
  const params: string[] = [];
  const converted = path
    .split('/')
    .map((part) => {
      if (!part.startsWith(':')) return part;
      params.push(part.slice(1));
      return `{${part.slice(1)}}`;
    })
    .join('/');
  return { path: converted, params };
}

const ERROR_RESPONSE = { $ref: '#/components/responses/Error' };

function operation(route: Route, schemas: SchemaWriter): JsonSchema {
  const { params } = openApiPath(route.path);
  const docs = route.docs ?? {};
  const policy = POLICIES[route.policy];
  const parameters: JsonSchema[] = params.map((name) => ({
    name,
    in: 'path',
    required: true,
    schema: { type: 'string' },
  }));
  if (docs.query) {
    const query = schemas.of(docs.query) as { properties?: Record<string, JsonSchema>; required?: string[] };
    for (const [name, schema] of Object.entries(query.properties ?? {})) {
      parameters.push({ name, in: 'query', required: query.required?.includes(name) ?? false, schema });
    }
  }
  const content: Record<string, JsonSchema> = {};
  if (docs.body !== undefined && docs.body !== 'none') content['application/json'] = { schema: schemas.of(docs.body) };
  for (const other of docs.otherBodies ?? []) {
    content[other.contentType] = { schema: { type: 'string', description: other.description } };
  }
  const answer = docs.answer ?? { status: 200, description: 'OK' };
  const answerContent = answer.contentType
    ? { [answer.contentType]: { schema: answer.schema ? schemas.of(answer.schema) : { type: 'string' } } }
    : { 'application/json': { schema: answer.schema ? schemas.of(answer.schema) : { type: 'object' } } };
  return {
    operationId: `${route.method.toLowerCase()}${route.path.replace(/[/:{}.-]+(\w)?/g, (_m, c: string = '') => c.toUpperCase())}`,
    summary: route.summary,
    description: `Policy \`${route.policy}\`: ${policy.summary}.`,
    ...(policy.public ? { security: [] } : {}),
    ...(parameters.length > 0 && { parameters }),
    ...(Object.keys(content).length > 0 && { requestBody: { required: docs.body !== undefined, content } }),
    responses: {
      [String(answer.status)]: { description: answer.description, content: answerContent },
      '4XX': ERROR_RESPONSE,
      '5XX': ERROR_RESPONSE,
    },
  };
}

export function buildOpenApiDocument(routes: readonly Route[], version: string): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  const schemas = new SchemaWriter();
  for (const route of routes) {
    const { path } = openApiPath(route.path);
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = operation(route, schemas);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Pilothouse matcher API',
      version,
      description:
        'Submit, find and steer jobs; pilots, site directors and operators use the same API. Errors are `{"error": {code, message, field?, retryable}}` with a stable code.',
    },
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      responses: {
        Error: {
          description: 'Refused: a stable code says why, and whether trying again may help',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
      },
      schemas: {
        ...schemas.components,
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message', 'retryable'],
              properties: {
                code: { type: 'string', enum: Object.keys(ERROR_CODES) },
                message: { type: 'string' },
                field: { type: 'string', description: 'the offending field, when one is to blame' },
                retryable: { type: 'boolean' },
              },
            },
          },
        },
      },
    },
  };
}
