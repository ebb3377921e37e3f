// A small typed client for the bundled auth API, generated from the spec: if the spec
// changes in a way that breaks generated clients, this stops type-checking.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

export type User = components["schemas"]["UserOut"];
export type Passkey = components["schemas"]["PasskeyOut"];
/** `navigator.credentials.create()`/`.get()` on the challenge's options, answering
 * `PublicKeyCredential.toJSON()` (a browser; in tests, a software authenticator). */
export type Authenticator = (options: unknown) => Promise<unknown>;

export function sessiongate(baseUrl: string) {
  const api = createClient<paths>({ baseUrl });

  return {
    async register(username: string, email: string, password: string): Promise<User> {
      const { data, error } = await api.POST("/v1/auth/register", {
        body: { username, email, password },
      });
      if (error) throw new Error(`${error.code}: ${error.message}`);
      return data.user;
    },

    async login(identifier: string, password: string): Promise<{ access: string; refresh: string }> {
      const { data, error } = await api.POST("/v1/auth/login", { body: { identifier, password } });
      if (error) throw new Error(`${error.code}: ${error.message}`);
      return { access: data.access_token, refresh: data.refresh_token };
    },

    async me(accessToken: string): Promise<User> {
      const { data, error } = await api.GET("/v1/auth/me", {
        headers: { Authorization: `Bearer ${accessToken}` },
      });
      if (error) throw new Error(`${error.code}: ${error.message}`);
      return data;
    },

    /** `currentPassword`: needed when the sign-in is older than 5 minutes. */
    async addPasskey(
      accessToken: string,
      name: string,
      create: Authenticator,
      currentPassword?: string,
    ): Promise<Passkey> {
      const headers = { Authorization: `Bearer ${accessToken}` };
      const start = await api.POST("/v1/users/me/passkeys/challenge", {
        headers,
        body: { current_password: currentPassword },
      });
      if (start.error) throw new Error(`${start.error.code}: ${start.error.message}`);
      const credential = await create(start.data.options);
      const { data, error } = await api.POST("/v1/users/me/passkeys", {
        headers,
        body: { challenge_id: start.data.challenge_id, name, credential },
      });
      if (error) throw new Error(`${error.code}: ${error.message}`);
      return data;
    },

    async passkeys(accessToken: string): Promise<Passkey[]> {
      const { data, error } = await api.GET("/v1/users/me/passkeys", {
        headers: { Authorization: `Bearer ${accessToken}` },
      });
      if (error) throw new Error(`${error.code}: ${error.message}`);
      return data;
    },

    async renamePasskey(accessToken: string, id: string, name: string): Promise<void> {
      const { error } = await api.PATCH("/v1/users/me/passkeys/{id}", {
        headers: { Authorization: `Bearer ${accessToken}` },
        params: { path: { id } },
        body: { name },
      });
      if (error) throw new Error(`${error.code}: ${error.message}`);
    },

    async removePasskey(accessToken: string, id: string): Promise<void> {
      const { error } = await api.DELETE("/v1/users/me/passkeys/{id}", {
        headers: { Authorization: `Bearer ${accessToken}` },
        params: { path: { id } },
      });
      if (error) throw new Error(`${error.code}: ${error.message}`);
    },

    /** Without `identifier`, any discoverable passkey may answer. */
    async signInWithPasskey(
      get: Authenticator,
      identifier?: string,
    ): Promise<{ access: string; refresh: string }> {
      const start = await api.POST("/v1/auth/passkey/challenge", { body: { identifier } });
      if (start.error) throw new Error(`${start.error.code}: ${start.error.message}`);
      const credential = await get(start.data.options);
      const { data, error } = await api.POST("/v1/auth/passkey", {
        body: { challenge_id: start.data.challenge_id, credential },
      });
      if (error) throw new Error(`${error.code}: ${error.message}`);
      return { access: data.access_token, refresh: data.refresh_token };
    },
  };
}
