/** CLI exit codes: scripts branch on these, so they are part of the interface. */
import { PilothouseError, toPilothouseError, type ErrorCode } from '../shared/errors.ts';

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  auth: 3,
  notFound: 4,
  unavailable: 5,
} as const;

const BY_CODE: Partial<Record<ErrorCode, number>> = {
  CONFIG_INVALID: EXIT.usage,
  VALIDATION_FAILED: EXIT.usage,
  BAD_JSON: EXIT.usage,
  JDL_INVALID: EXIT.usage,
  BAD_QUERY: EXIT.usage,
  PAGE_OUT_OF_RANGE: EXIT.usage,
  SUBMISSION_TOO_LARGE: EXIT.usage,
  TOKEN_MISSING: EXIT.auth,
  TOKEN_INVALID: EXIT.auth,
  TOKEN_EXPIRED: EXIT.auth,
  TOKEN_REVOKED: EXIT.auth,
  TOKEN_ATTEMPT_ENDED: EXIT.auth,
  PILOT_SECRET_INVALID: EXIT.auth,
  PILOT_SECRET_SPENT: EXIT.auth,
  FORBIDDEN: EXIT.auth,
  LOGIN_REFUSED: EXIT.auth,
  JOB_NOT_FOUND: EXIT.notFound,
  SANDBOX_NOT_FOUND: EXIT.notFound,
  PILOT_NOT_FOUND: EXIT.notFound,
  DIRECTOR_NOT_FOUND: EXIT.notFound,
  TASK_QUEUE_NOT_FOUND: EXIT.notFound,
  SCHEDULE_NOT_FOUND: EXIT.notFound,
  CRON_INVALID: EXIT.usage,
  SCHEDULE_TOO_FREQUENT: EXIT.usage,
  MATCHER_UNREACHABLE: EXIT.unavailable,
  STORE_UNAVAILABLE: EXIT.unavailable,
  IDP_UNAVAILABLE: EXIT.unavailable,
  RATE_LIMITED: EXIT.unavailable,
  SHUTTING_DOWN: EXIT.unavailable,
};

export function exitCodeFor(error: PilothouseError): number {
  return BY_CODE[error.code] ?? EXIT.failure;
}

/** Prints an error the way every command does: one line for people, or a JSON object for scripts. */
export function reportError(thrown: unknown, json: boolean): number {
  const error = toPilothouseError(thrown);
  if (json) process.stdout.write(`${JSON.stringify({ error: error.toJSON() })}\n`);
  else process.stderr.write(`pilothouse: ${error.message} [${error.code}]\n`);
  return exitCodeFor(error);
}
