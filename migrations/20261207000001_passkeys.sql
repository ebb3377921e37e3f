-- Passkeys (WebAuthn credentials) of the bundled accounts. The user handle an
-- authenticator keeps is the user's id (a random UUID: no personal data).
CREATE TABLE passkeys (
    -- Our own id, the one in /v1/users/me/passkeys/{id} (never the credential id).
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The WebAuthn credential id, base64url: one account only.
    credential_id TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    -- webauthn-rs's Passkey (public key, algorithm, counter, backup state) as JSON.
    credential    TEXT NOT NULL,
    -- The authenticator's signature counter after the last sign-in (0: it keeps none).
    sign_count    BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);
