// The unchanged next-auth/react v4 client (SessionProvider, useSession, signIn, signOut,
// getProviders) talking to sessiongate's /api/auth: the proof that apps written for
// NextAuth keep working.
import { useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { SessionProvider, getProviders, signIn, signOut, useSession } from "next-auth/react";

const HERE = "/nextauth-compat/";

function SignInForm() {
  const [error, setError] = useState("");
  const [providers, setProviders] = useState({});
  useEffect(() => {
    getProviders().then((p) => setProviders(p || {}));
  }, []);

  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const result = await signIn("credentials", {
      redirect: false,
      username: form.username.value,
      password: form.password.value,
      callbackUrl: HERE,
    });
    setError(result?.error ? "That username or password is not right." : "");
  }

  const oauth = Object.values(providers).filter((p) => p.type === "oauth");
  return (
    <article className="card">
      <h2>Sign in (next-auth/react)</h2>
      {error && <p className="notice" role="alert">{error}</p>}
      <form onSubmit={submit}>
        <label htmlFor="na-username">Username or email</label>
        <input id="na-username" name="username" autoComplete="username" required />
        <label htmlFor="na-password">Password</label>
        <input id="na-password" name="password" type="password" autoComplete="current-password" required />
        <button type="submit">Sign in</button>
      </form>
      <div className="providers">
        {oauth.map((p) => (
          <button key={p.id} type="button" onClick={() => signIn(p.id, { callbackUrl: HERE })}>
            Sign in with {p.name}
          </button>
        ))}
      </div>
    </article>
  );
}

function App() {
  const { data: session, status } = useSession();
  if (status === "loading") return <p className="card">Loading…</p>;
  if (!session) return <SignInForm />;
  return (
    <article className="card">
      <h2>Signed in</h2>
      <p data-testid="who">
        {session.user?.name} ({session.user?.email}) via {session.provider}
      </p>
      <button type="button" onClick={() => signOut({ callbackUrl: HERE })}>Sign out</button>
    </article>
  );
}

createRoot(document.getElementById("root")).render(
  <SessionProvider basePath="/api/auth">
    <App />
  </SessionProvider>,
);
