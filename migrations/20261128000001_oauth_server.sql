-- The bundled OAuth2 authorization server (/oauth). Portable SQL; times are unix seconds;
-- every secret (client secrets, codes, tokens) is stored as a SHA-256 hash only.

CREATE TABLE oauth_clients (
    client_id     TEXT PRIMARY KEY,
    -- NULL: a public client (no secret; PKCE required)
    secret_hash   TEXT,
    name          TEXT NOT NULL,
    -- exact redirect URIs, one per line
    redirect_uris TEXT NOT NULL,
    -- space-separated scopes and grant types the client may use
    scopes        TEXT NOT NULL,
    grants        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- What a user allowed a client, remembered so the consent page is shown once.
CREATE TABLE oauth_consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- One grant per exchanged code: every token it led to (refreshes included) belongs to it,
-- and revoking the grant ends them all.
CREATE TABLE oauth_grants (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX oauth_grants_user_client ON oauth_grants (user_id, client_id);

-- Authorization codes: short-lived, single use. grant_id is set when the code is
-- exchanged; presenting it again revokes that grant.
CREATE TABLE oauth_codes (
    code_hash    TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- empty when the request named none (the single registered one was used)
    redirect_uri TEXT NOT NULL,
    scope        TEXT NOT NULL,
    challenge    TEXT,
    nonce        TEXT,
    -- when the user signed in (the id_token's auth_time)
    auth_time    BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    grant_id     TEXT
);
CREATE INDEX oauth_codes_user_client ON oauth_codes (user_id, client_id);

-- Access and refresh tokens (opaque, so revocation is immediate).
CREATE TABLE oauth_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    -- may be narrower than the grant's (a refresh can ask for less)
    scope      TEXT NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent_at   BIGINT,
    revoked_at BIGINT
);
CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id);

-- id_token signing keys (ES256, PKCS#8 base64). The newest signs; all unretired ones
-- are published in the JWKS.
CREATE TABLE oauth_keys (
    kid         TEXT PRIMARY KEY,
    private_key TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
