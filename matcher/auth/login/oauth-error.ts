/**
 * Errors of the OAuth endpoints, in the form RFC 6749 §5.2 and RFC 8628 §3.5 name them
 * (`{"error": "...", "error_description": "..."}`): OAuth clients (openid-client in the CLI, the web
 * application) branch on these codes, so these endpoints answer them instead of Pilothouse's codes.
 */
export const OAUTH_ERROR_CODES = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'unsupported_response_type',
  'invalid_scope',
  'authorization_pending',
  'slow_down',
  'access_denied',
  'expired_token',
  'temporarily_unavailable',
] as const;
export type OAuthErrorCode = (typeof OAUTH_ERROR_CODES)[number];

export class OAuthError extends Error {
  readonly error: OAuthErrorCode;
  readonly status: number;

  constructor(error: OAuthErrorCode, description: string, status?: number) {
    super(description);
    this.error = error;
    // RFC 6749 §5.2: 400, except 401 for a client that failed to authenticate.
    this.status = status ?? (error === 'invalid_client' ? 401 : error === 'temporarily_unavailable' ? 503 : 400);
  }

  toJSON(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.error, error_description: this.message };
  }
}
