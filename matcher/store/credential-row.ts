/**
 * Pilot credentials and exchange failure windows as both stores keep them: one table shape (snake_case columns, times in
 * milliseconds since the epoch) and one way back to the model.
 */
import type { FailureWindow, PilotCredential, PilotCredentialKind } from './credential-store.ts';

export interface CredentialRow {
  hash: string;
  kind: PilotCredentialKind;
  vo: string;
  site: string;
  pilot_stamp: string;
  family: string;
  created_at_ms: number;
  expires_at_ms: number;
  family_expires_at_ms: number;
  created_by: string;
  spent_at_ms: number | null;
  access_token_id: string | null;
  access_expires_at_ms: number | null;
}

export function credentialFromRow(row: CredentialRow): PilotCredential {
  return {
    hash: row.hash,
    kind: row.kind,
    vo: row.vo,
    site: row.site,
    pilotStamp: row.pilot_stamp,
    family: row.family,
    createdAtMs: row.created_at_ms,
    expiresAtMs: row.expires_at_ms,
    familyExpiresAtMs: row.family_expires_at_ms,
    createdBy: row.created_by,
    spentAtMs: row.spent_at_ms,
    accessTokenId: row.access_token_id,
    accessExpiresAtMs: row.access_expires_at_ms,
  };
}

export interface FailureWindowRow {
  failures: number | string;
  started_at_ms: number | string;
  ends_at_ms: number | string;
}

export function failureWindowFromRow(row: FailureWindowRow): FailureWindow {
  return { failures: Number(row.failures), startedAtMs: Number(row.started_at_ms), endsAtMs: Number(row.ends_at_ms) };
}
