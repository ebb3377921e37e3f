-- OpenID Front-Channel Logout 1.0 §2: where a client hears of logouts through the
-- browser (an iframe on the OP's signed-out page, with `iss` and `sid`). NULL: none.
ALTER TABLE oauth_clients ADD COLUMN frontchannel_logout_uri TEXT;
