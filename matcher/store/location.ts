/**
 * Where the matcher keeps its state: `sqlite:PATH` (the embedded default, one matcher process) or
 * `postgres://USER@HOST:PORT/DB[?schema=NAME]` (several replicas may share it). Parsed once from
 * `--db`; errors name the flag.
 */
import path from 'node:path';
import { PilothouseError } from '../../shared/errors.ts';

export type StoreLocation =
  { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string; schema: string | undefined };

export const DEFAULT_SQLITE_FILE = 'pilothouse.sqlite';
const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

export function parseStoreLocation(db: string | undefined, dataDir: string): StoreLocation {
  if (db === undefined || db === '')
    return { kind: 'sqlite', path: path.join(path.resolve(dataDir), DEFAULT_SQLITE_FILE) };
  if (db.startsWith('sqlite:')) {
    const file = db.slice('sqlite:'.length);
    if (file === '') throw invalid(db, 'sqlite: needs a file path');
    return { kind: 'sqlite', path: path.resolve(file) };
  }
  if (db.startsWith('postgres://') || db.startsWith('postgresql://')) {
    let url: URL;
    try {
      url = new URL(db);
    } catch {
      throw invalid(db, 'not a URL');
    }
    if (url.hostname === '' || url.pathname.length <= 1) throw invalid(db, 'it needs a host and a database name');
    const schema = url.searchParams.get('schema') ?? undefined;
    if (schema !== undefined && !SCHEMA.test(schema))
      throw invalid(db, `schema '${schema}' is not a lower-case SQL name`);
    url.searchParams.delete('schema');
    return { kind: 'postgres', url: url.toString(), schema };
  }
  throw invalid(db, 'expected sqlite:PATH or postgres://USER@HOST:PORT/DB');
}

/** For logs: the location without a password. */
export function describeStoreLocation(location: StoreLocation): string {
  if (location.kind === 'sqlite') return `sqlite:${location.path}`;
  const url = new URL(location.url);
  if (url.password !== '') url.password = '***';
  return `${url.toString()}${location.schema === undefined ? '' : ` (schema ${location.schema})`}`;
}

function invalid(db: string, why: string): PilothouseError {
  const shown = db.replace(/:\/\/([^:@/]+):[^@/]*@/, '://$1:***@');
  return new PilothouseError('CONFIG_INVALID', `--db ${shown}: ${why}`, { field: 'db' });
}
