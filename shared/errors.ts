/**
 * Every error that crosses a boundary (HTTP answer, WebSocket frame, CLI exit) carries a stable `code`
 * from this registry. Clients branch on codes, never on message text. `retryable` says whether the same
 * request may succeed later unchanged; `httpStatus` is what the REST API answers with.
 * docs/errors.md lists the same codes; test/shared/errors.test.ts keeps the two in step.
 */
export const ERROR_CODES = {
  BAD_JSON: { httpStatus: 400, retryable: false, summary: 'the request body is not valid JSON' },
  VALIDATION_FAILED: { httpStatus: 400, retryable: false, summary: 'a field is missing, unknown or of the wrong type' },
  JDL_INVALID: {
    httpStatus: 400,
    retryable: false,
    summary: 'the JDL is malformed, or an attribute has a value no job can have (line and column given)',
  },
  BAD_QUERY: { httpStatus: 400, retryable: false, summary: 'a search filter, sort or page parameter is not valid' },
  PAGE_OUT_OF_RANGE: { httpStatus: 416, retryable: false, summary: 'the page asked for lies past the last job found' },
  UNSUPPORTED_MEDIA_TYPE: { httpStatus: 415, retryable: false, summary: 'the request body has the wrong content type' },
  PAYLOAD_TOO_LARGE: { httpStatus: 413, retryable: false, summary: 'the request body exceeds its size limit' },
  TOKEN_MISSING: { httpStatus: 401, retryable: false, summary: 'no bearer token was presented' },
  TOKEN_INVALID: {
    httpStatus: 401,
    retryable: false,
    summary: 'the token is malformed, badly signed or not for this matcher',
  },
  TOKEN_EXPIRED: { httpStatus: 401, retryable: false, summary: 'the token has expired' },
  TOKEN_REVOKED: {
    httpStatus: 401,
    retryable: false,
    summary: 'the token, or the key that signed it, has been revoked',
  },
  TOKEN_ATTEMPT_ENDED: {
    httpStatus: 401,
    retryable: false,
    summary: 'the job token belongs to an attempt that has ended (finished, killed or rescheduled)',
  },
  PILOT_SECRET_INVALID: {
    httpStatus: 401,
    retryable: false,
    summary: 'the pilot secret or refresh token is unknown, expired, or not for this pilot stamp',
  },
  PILOT_SECRET_SPENT: {
    httpStatus: 401,
    retryable: false,
    summary: 'the one-time pilot secret or refresh token was already used; its pilot is revoked',
  },
  FORBIDDEN: { httpStatus: 403, retryable: false, summary: 'the token does not allow this action on this object' },
  ROUTE_NOT_FOUND: { httpStatus: 404, retryable: false, summary: 'no such API route' },
  BAD_PATH: {
    httpStatus: 400,
    retryable: false,
    summary: 'the request path or target is malformed (e.g. broken percent-encoding)',
  },
  RATE_LIMITED: {
    httpStatus: 429,
    retryable: true,
    summary: 'too many failed attempts from this address, or too many frames on one connection; retry later',
  },
  TOO_MANY_CONNECTIONS: {
    httpStatus: 429,
    retryable: true,
    summary: 'this token already holds as many open pilot connections as allowed; retry once one closes',
  },
  SUBMISSION_TOO_LARGE: {
    httpStatus: 413,
    retryable: false,
    summary: 'a submission holds more jobs than the matcher takes at once',
  },
  METHOD_NOT_ALLOWED: { httpStatus: 405, retryable: false, summary: 'the route exists but not for this HTTP method' },
  JOB_NOT_FOUND: { httpStatus: 404, retryable: false, summary: 'no job with this id (or not visible to the caller)' },
  SANDBOX_NOT_FOUND: { httpStatus: 404, retryable: false, summary: 'no sandbox with this checksum' },
  SANDBOX_CHECKSUM_MISMATCH: {
    httpStatus: 400,
    retryable: false,
    summary: 'uploaded bytes do not hash to the announced sha256',
  },
  SANDBOX_UNSAFE: {
    httpStatus: 400,
    retryable: false,
    summary: 'a sandbox archive holds an entry that would escape its directory',
  },
  SANDBOX_TOO_LARGE: { httpStatus: 413, retryable: false, summary: 'a sandbox exceeds its size limit' },
  SANDBOX_QUOTA_EXCEEDED: {
    httpStatus: 413,
    retryable: false,
    summary: "the upload would take the VO's stored sandboxes beyond its quota",
  },
  ATTEMPT_MISMATCH: {
    httpStatus: 409,
    retryable: false,
    summary: 'the report names an attempt that is not the current one',
  },
  JOB_NOT_DELETABLE: {
    httpStatus: 409,
    retryable: false,
    summary: 'the job is in a status it cannot be deleted from now',
  },
  JOB_NOT_RESCHEDULABLE: {
    httpStatus: 409,
    retryable: false,
    summary: 'the job is not in a status to reschedule from, or has used all its attempts',
  },
  PILOT_NOT_FOUND: {
    httpStatus: 404,
    retryable: false,
    summary: 'no pilot with this id (or not visible to the caller)',
  },
  PILOT_CONFLICT: {
    httpStatus: 409,
    retryable: false,
    summary: 'a pilot stamp is already registered for another pilot (VO, site or job reference differ)',
  },
  DIRECTOR_NOT_FOUND: { httpStatus: 404, retryable: false, summary: 'no site director has reported under this name' },
  TASK_QUEUE_NOT_FOUND: {
    httpStatus: 404,
    retryable: false,
    summary: 'no task queue with this id',
  },
  SCHEDULE_NOT_FOUND: {
    httpStatus: 404,
    retryable: false,
    summary: 'no schedule with this id (or not visible to the caller)',
  },
  CRON_INVALID: {
    httpStatus: 400,
    retryable: false,
    summary: 'the cron expression or the time zone of a schedule cannot be used (the field is named)',
  },
  SCHEDULE_TOO_FREQUENT: {
    httpStatus: 400,
    retryable: false,
    summary: "the schedule would fire more often than the matcher's minimum interval allows",
  },
  POLICY_CONFLICT: {
    httpStatus: 409,
    retryable: false,
    summary: 'the scheduling policy changed since the version the request was based on: read it again',
  },
  PILOT_BUNDLE_UNAVAILABLE: {
    httpStatus: 503,
    retryable: true,
    summary: 'the matcher has no pilot bundle (dist/pilot.mjs) to serve',
  },
  CE_UNREACHABLE: {
    httpStatus: 503,
    retryable: true,
    summary: 'a computing element (or its login node) could not be reached',
  },
  CE_TIMEOUT: { httpStatus: 504, retryable: true, summary: 'a computing element did not answer within its timeout' },
  CE_REFUSED: {
    httpStatus: 502,
    retryable: false,
    summary: 'a computing element refused the request (bad queue, credentials, limits): fix the configuration',
  },
  CE_BAD_ANSWER: {
    httpStatus: 502,
    retryable: true,
    summary: 'a computing element answered something that cannot be understood',
  },
  PROTOCOL_VIOLATION: {
    httpStatus: 400,
    retryable: false,
    summary: 'a WebSocket frame is not a valid protocol message',
  },
  UPGRADE_REQUIRED: {
    httpStatus: 426,
    retryable: false,
    summary: 'the route is a WebSocket endpoint: open it with an upgrade request',
  },
  PROTOCOL_VERSION: { httpStatus: 400, retryable: false, summary: 'the peer speaks an unsupported protocol version' },
  MATCHER_UNREACHABLE: { httpStatus: 503, retryable: true, summary: 'the matcher could not be reached' },
  IDP_UNAVAILABLE: {
    httpStatus: 503,
    retryable: true,
    summary: "a trusted identity provider's keys (JWKS) or its sign-in could not be reached",
  },
  LOGIN_REFUSED: {
    httpStatus: 400,
    retryable: false,
    summary:
      'a sign-in was refused: unknown, expired or replayed code or state, an identity provider answer that failed its checks, or no mapped group',
  },
  STORE_UNAVAILABLE: { httpStatus: 503, retryable: true, summary: 'the job store is unavailable' },
  STORE_IN_USE: {
    httpStatus: 409,
    retryable: false,
    summary: 'another matcher process already uses this SQLite file (one per file; several need PostgreSQL)',
  },
  SHUTTING_DOWN: { httpStatus: 503, retryable: true, summary: 'the matcher is shutting down' },
  CONFIG_INVALID: {
    httpStatus: 400,
    retryable: false,
    summary: 'a command-line option or configuration value is not valid',
  },
  INTERNAL: { httpStatus: 500, retryable: true, summary: 'an unexpected internal error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

const BRAND = Symbol.for('pilothouse.error');

export interface ErrorDetails {
  /** Dotted path of the offending field, e.g. `jobs[3].requirements.cores.min`. */
  field?: string;
  [key: string]: unknown;
}

/** The one error class of the project. The brand keeps `instanceof` working across bundle copies. */
export class PilothouseError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PilothouseError';
    this.code = code;
    this.details = details;
    Object.defineProperty(this, BRAND, { value: true });
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].httpStatus;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  toJSON(): { code: ErrorCode; message: string; retryable: boolean } & ErrorDetails {
    return { code: this.code, message: this.message, retryable: this.retryable, ...this.details };
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** Turns whatever was thrown into an Error so that its fields can be read safely. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : JSON.stringify(thrown));
}

/** Wraps anything that is not already a PilothouseError as INTERNAL, keeping the cause. */
export function toPilothouseError(thrown: unknown): PilothouseError {
  if (thrown instanceof PilothouseError) return thrown;
  const error = coerceError(thrown);
  return new PilothouseError('INTERNAL', error.message, {}, { cause: error });
}
