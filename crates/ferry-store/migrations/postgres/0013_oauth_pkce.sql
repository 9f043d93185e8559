-- The PKCE code verifier of an OAuth flow in progress (Salesforce), sealed like the tokens,
-- kept with its state until the callback uses both up.
ALTER TABLE oauth_states ADD COLUMN code_verifier BYTEA;
