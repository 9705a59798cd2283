/**
 * `pilothouse login [--vo VO] [--group G]`: sign in through the matcher with the community's identity
 * provider (the device flow: a URL and a code to open in any browser), and keep the tokens where
 * every other command finds them. `pilothouse logout` ends the sign-in; `pilothouse whoami` says who
 * the current token is.
 */
import { Command } from 'commander';
import { parseMatcherUrls } from '../../shared/endpoints.ts';
import { DEFAULT_MATCHER_URL, MatcherClient, readCaFile, type ClientOptions } from '../client.ts';
import { printJson } from '../format.ts';
import { deviceLogin, logout } from '../matcher-login.ts';
import { credentialsFile } from '../saved-logins.ts';

interface LoginOptions {
  matcher?: string;
  caFile?: string;
  vo?: string;
  group?: string;
  json?: boolean;
}

const matcherOf = (options: { matcher?: string | undefined }): string =>
  parseMatcherUrls(options.matcher ?? process.env.PILOTHOUSE_MATCHER ?? DEFAULT_MATCHER_URL)[0] as string;

const caOf = (options: { caFile?: string | undefined }): Promise<string | undefined> =>
  readCaFile(options.caFile ?? process.env.PILOTHOUSE_CA_FILE);

interface WhoAmI {
  user: string;
  vo: string;
  group: string;
  properties: string[];
}

export function loginCommand(): Command {
  return new Command('login')
    .description(
      'sign in with your community identity provider (device flow: open the URL shown, in any browser, and confirm the code); the tokens are kept for the other commands',
    )
    .option('--matcher <url>', 'matcher base URL (env PILOTHOUSE_MATCHER)')
    .option('--ca-file <file>', 'CA bundle (PEM) that verifies an https matcher (env PILOTHOUSE_CA_FILE)')
    .option('--vo <vo>', 'the VO to act in (default: the only one that signs in at this matcher)')
    .option('--group <group>', 'the group to act as (default: the first your identity provider groups map to)')
    .option('--json', 'print who signed in as JSON', false)
    .action(async (options: LoginOptions) => {
      const matcherUrl = matcherOf(options);
      const caPem = await caOf(options);
      const login = await deviceLogin({
        matcherUrl,
        caPem,
        vo: options.vo,
        group: options.group,
        onCode({ urlWithCode, url, userCode, expiresInSec }) {
          process.stderr.write(
            `To sign in, open ${urlWithCode}\n(or open ${url} and type the code ${userCode}); it expires in ${Math.round(expiresInSec / 60)} min. Waiting...\n`,
          );
        },
        async whoAmI(accessToken) {
          const client = new MatcherClient(matcherUrl, accessToken, { caPem });
          return (await client.json<WhoAmI>('GET', '/api/auth/userinfo')).body;
        },
      });
      const who = { user: login.user, vo: login.vo, group: login.group, credentials: credentialsFile() };
      if (options.json) printJson(who);
      else process.stdout.write(`signed in as ${login.user} (VO ${login.vo}, group ${login.group})\n`);
    });
}

export function logoutCommand(): Command {
  return new Command('logout')
    .description('end the sign-in kept by pilothouse login: revoked at the matcher and forgotten here')
    .option('--matcher <url>', 'matcher base URL (env PILOTHOUSE_MATCHER)')
    .option('--ca-file <file>', 'CA bundle (PEM) that verifies an https matcher (env PILOTHOUSE_CA_FILE)')
    .option('--json', 'print the outcome as JSON', false)
    .action(async (options: LoginOptions) => {
      const outcome = await logout(matcherOf(options), { caPem: await caOf(options) });
      if (options.json) printJson(outcome);
      else if (!outcome.signedOut) process.stdout.write('not signed in at this matcher\n');
      else
        process.stdout.write(
          outcome.revoked
            ? 'signed out\n'
            : 'signed out here (the matcher could not be told; the sign-in ends by itself)\n',
        );
    });
}

export function whoamiCommand(): Command {
  return new Command('whoami')
    .description('who the token in use says you are: user, VO, group, properties')
    .option('--matcher <urls>', 'matcher base URL (env PILOTHOUSE_MATCHER)')
    .option(
      '--token-file <file>',
      'file holding a token (default: PILOTHOUSE_TOKEN_FILE, PILOTHOUSE_TOKEN, the saved sign-in)',
    )
    .option('--ca-file <file>', 'CA bundle (PEM) that verifies an https matcher (env PILOTHOUSE_CA_FILE)')
    .option('--json', 'print JSON for scripts', false)
    .action(async (options: ClientOptions & { json?: boolean }) => {
      const client = await MatcherClient.fromOptions(options);
      const { body } = await client.json<WhoAmI>('GET', '/api/auth/userinfo');
      if (options.json) printJson(body);
      else process.stdout.write(`${body.user} (VO ${body.vo}, group ${body.group}; ${body.properties.join(', ')})\n`);
    });
}
