// A typed client for a proxied API — the FastAPI application of the browser tests —
// generated from the document sessiongate serves for it (items.openapi.json): it calls
// through the BFF with the session cookie (`credentials: "include"`) and sends the
// anti-CSRF header on unsafe methods, as the rewritten document requires.
import createClient from "openapi-fetch";
import type { components, paths } from "./items-schema";

export type Item = components["schemas"]["Item"];

export function items(baseUrl: string) {
  const api = createClient<paths>({ baseUrl, credentials: "include" });

  return {
    async list(): Promise<Item[]> {
      const { data, error, response } = await api.GET("/api/shop/items");
      if (error) throw new Error(`${response.status}: ${JSON.stringify(error)}`);
      return data;
    },

    async create(name: string): Promise<Item> {
      const { data, error, response } = await api.POST("/api/shop/items", {
        params: { header: { "X-CSRF": "1" } },
        body: { name },
      });
      if (error) throw new Error(`${response.status}: ${JSON.stringify(error)}`);
      return data;
    },
  };
}
