/** Sign in with the community's identity provider, or with a token an administrator gave you. */
import { useEffect, useState } from 'react';
import { adoptToken, signIn } from '../session.ts';

export function SignInPage({ onSignedIn }: { onSignedIn: () => void }) {
  const [loginEnabled, setLoginEnabled] = useState<boolean | null>(null);
  const [scope, setScope] = useState('');
  const [token, setToken] = useState('');
  useEffect(() => {
    fetch('/.well-known/oauth-authorization-server')
      .then((response) => response.json() as Promise<{ login_enabled: boolean }>)
      .then(
        (metadata) => setLoginEnabled(metadata.login_enabled),
        () => setLoginEnabled(false),
      );
  }, []);
  return (
    <main className="narrow">
      <h1>Pilothouse</h1>
      {loginEnabled && (
        <form
          onSubmit={(event) => {
            event.preventDefault();
            void signIn(scope, location.pathname + location.search);
          }}
        >
          <label htmlFor="scope">VO and group (optional, e.g. "vo:lhcb group:lhcb_prod")</label>
          <input id="scope" value={scope} onChange={(event) => setScope(event.target.value)} />
          <button type="submit">Sign in</button>
        </form>
      )}
      {loginEnabled === false && <p>This matcher has no identity provider configured for sign-in.</p>}
      <details open={loginEnabled === false}>
        <summary>Use a token</summary>
        <form
          onSubmit={(event) => {
            event.preventDefault();
            adoptToken(token);
            onSignedIn();
          }}
        >
          <label htmlFor="token">A token from pilothouse token issue (or admin.token)</label>
          <textarea id="token" rows={3} value={token} onChange={(event) => setToken(event.target.value)} required />
          <button type="submit">Use this token</button>
        </form>
      </details>
    </main>
  );
}
