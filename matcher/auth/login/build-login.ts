/** Assembles user login from the configuration: one IdP client per VO whose issuer has a `login` block. */
import type { Clock } from '../../../shared/clock.ts';
import { PilothouseError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { MatcherConfig } from '../../config.ts';
import type { LoginDeps } from '../../http/routes/login.ts';
import type { CredentialStore } from '../../store/credential-store.ts';
import type { LoginStore } from '../../store/login-store.ts';
import type { TokenService } from '../tokens.ts';
import { IdpClient } from './idp-client.ts';
import { DEFAULT_LOGIN_SETTINGS } from './login-config.ts';
import { SignIn } from './sign-in.ts';
import { TokenGrants } from './token-grants.ts';

export function buildLogin(deps: {
  config: Pick<MatcherConfig, 'oidc' | 'publicUrl'>;
  store: LoginStore;
  credentials: CredentialStore;
  tokens: TokenService;
  clock: Clock;
  logger: Logger;
}): LoginDeps {
  const { config, store, credentials, tokens, clock } = deps;
  const logger = deps.logger.child({ module: 'login' });
  const settings = config.oidc?.login ?? DEFAULT_LOGIN_SETTINGS;
  const idps = new Map<string, IdpClient>();
  for (const issuer of config.oidc?.issuers ?? []) {
    if (issuer.login === null) continue;
    if (idps.has(issuer.vo)) {
      throw new PilothouseError('CONFIG_INVALID', `two issuers with a login block serve VO ${issuer.vo}: keep one`, {
        field: 'oidc.issuers.login',
      });
    }
    idps.set(issuer.vo, new IdpClient(issuer));
  }
  return {
    signIn: new SignIn({ store, idps, settings, clock, logger }),
    tokenGrants: new TokenGrants({ store, credentials, tokens, settings, clock, logger }),
    publicUrl: config.publicUrl,
  };
}
