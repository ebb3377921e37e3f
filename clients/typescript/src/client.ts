// A small typed client for the bundled auth API, generated from the spec: if the spec
// changes in a way that breaks generated clients, this stops type-checking.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

export type User = components["schemas"]["UserOut"];

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
  };
}
