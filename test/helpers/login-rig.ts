/**
 * A matcher whose users sign in at a real OIDC provider run by the test (oidc-provider): the IdP's
 * groups `/vo-a` and `/vo-a/prod` map to groups vo-a_user and vo-a_prod (job administrators) of
 * VO vo-a, as a community's oidc.json would say. Used by the login tests over HTTP and through the CLI.
 */
import type { RawMatcherConfig } from '../../matcher/config.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Clock } from '../../shared/clock.ts';
import { Agent } from 'undici';
import type { TestCa } from './test-ca.ts';
import { startTestMatcher, type TestMatcher } from './matcher.ts';
import { startTestIdp, type TestIdp } from './oidc-idp.ts';

export interface LoginRig {
  idp: TestIdp;
  m: TestMatcher;
  work: string;
  close(): Promise<void>;
}

export const TEST_USERS = {
  alice: { groups: ['/vo-a'] },
  carol: { groups: ['/vo-a', '/vo-a/prod'] },
  mallory: { groups: ['/elsewhere'] },
};

export async function startLoginRig(
  options: { clock?: Clock; login?: Record<string, number>; tls?: TestCa; raw?: Partial<RawMatcherConfig> } = {},
): Promise<LoginRig> {
  const idp = await startTestIdp(TEST_USERS);
  const work = await mkdtemp(path.join(os.tmpdir(), 'ph-login-'));
  const secretFile = path.join(work, 'idp-secret');
  await writeFile(secretFile, `${idp.clientSecret}\n`);
  const oidcFile = path.join(work, 'oidc.json');
  await writeFile(
    oidcFile,
    JSON.stringify({
      issuers: [
        {
          issuer: idp.issuer,
          jwksUrl: `${idp.issuer}/jwks`,
          audience: 'pilothouse',
          vo: 'vo-a',
          groups: [
            { idpGroup: '/vo-a/prod', group: 'vo-a_prod', properties: ['NormalUser', 'JobAdministrator'] },
            { idpGroup: '/vo-a', group: 'vo-a_user', properties: ['NormalUser'] },
          ],
          login: { clientId: idp.clientId, clientSecretFile: secretFile, scopes: ['openid', 'groups'] },
        },
      ],
      login: options.login ?? {},
    }),
  );
  const tls = options.tls;
  const m = await startTestMatcher({
    ...(options.clock && { clock: options.clock }),
    raw: { oidcConfig: oidcFile, ...(tls && { tlsCert: tls.certFile, tlsKey: tls.keyFile }), ...options.raw },
    ...(tls && { fetchInit: { dispatcher: new Agent({ connect: { ca: tls.caPem } }) } }),
  });
  idp.allowRedirect(`${m.url}/api/auth/callback`);
  return {
    idp,
    m,
    work,
    async close() {
      await m.close();
      await idp.close();
      await rm(work, { recursive: true, force: true });
    },
  };
}
