-- The bundled authorization server as an OpenID Provider.

-- The OP session (`sid`, derived from the browser session's handle) that a code and then
-- its grant came from, so that a logout finds every client that session signed into
-- (back-channel logout) with one indexed lookup.
ALTER TABLE oauth_codes ADD COLUMN sid TEXT;
ALTER TABLE oauth_grants ADD COLUMN sid TEXT;
CREATE INDEX oauth_grants_sid ON oauth_grants (sid);

-- Signing keys of two algorithms (RS256: PKCS#1, ES256: PKCS#8, both DER base64). Keys
-- made before this migration are the ES256 ones.
ALTER TABLE oauth_keys ADD COLUMN alg TEXT NOT NULL DEFAULT 'ES256';

-- Client metadata of OpenID Connect Registration §2 and the logout specifications:
-- where a client may be sent after logout (exact URIs, one per line), where it hears of
-- logouts (back-channel), and how its id_tokens are signed (NULL: the default, RS256).
ALTER TABLE oauth_clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE oauth_clients ADD COLUMN backchannel_logout_session_required BIGINT NOT NULL DEFAULT 0;
ALTER TABLE oauth_clients ADD COLUMN id_token_signed_response_alg TEXT;
-- Clients registered before RS256 existed keep the ES256 id_tokens they were built for
-- (configured clients take what their configuration says at the next start).
UPDATE oauth_clients SET id_token_signed_response_alg = 'ES256';
-- RFC 9126 §6: 1 when the client's authorization requests must be pushed (/oauth/par).
ALTER TABLE oauth_clients ADD COLUMN require_pushed_authorization_requests BIGINT NOT NULL DEFAULT 0;
