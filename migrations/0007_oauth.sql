-- The OAuth authorization server (issue 15): clients, pending authorizations, codes,
-- consents, and the binding of OAuth sessions to their client and resource.

-- Clients: registered (RFC 7591) or fetched Client ID Metadata Documents (cached).
CREATE TABLE oauth_clients (
    client_id        text PRIMARY KEY CHECK (length(client_id) BETWEEN 1 AND 2000),
    kind             text NOT NULL CHECK (kind IN ('registered', 'metadata_document')),
    client_name      text CHECK (length(client_name) <= 100),
    redirect_uris    text[] NOT NULL CHECK (cardinality(redirect_uris) BETWEEN 1 AND 10),
    grant_types      text[] NOT NULL,
    token_endpoint_auth_method text NOT NULL
        CHECK (token_endpoint_auth_method IN ('none', 'client_secret_basic', 'client_secret_post')),
    secret_hash      bytea,            -- SHA-256 of a 256-bit random secret; NULL for public clients
    metadata         jsonb NOT NULL,   -- the accepted registration, as answered
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by_addr  text,
    last_used_at     timestamptz,
    document_expires_at timestamptz,   -- metadata_document: fetch again after this
    CHECK ((secret_hash IS NULL) = (token_endpoint_auth_method = 'none')),
    CHECK ((kind = 'metadata_document') = (document_expires_at IS NOT NULL))
);

-- Pending authorization requests: from GET /authorize to the code (or the refusal).
CREATE TABLE oauth_flows (
    id             text PRIMARY KEY,          -- the flow id: 128 random bits, logged everywhere
    browser_hash   bytea NOT NULL,            -- SHA-256 of the flow cookie's value
    client_id      text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    redirect_uri   text NOT NULL,             -- exactly as sent (loopback port included)
    state          text CHECK (length(state) <= 1024),
    code_challenge text NOT NULL CHECK (length(code_challenge) = 43),
    resource       text NOT NULL,             -- canonical resource URL
    scope          text[] NOT NULL,
    prompt         text,
    user_id        uuid REFERENCES users (id) ON DELETE CASCADE,  -- who was shown the consent
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    finished_at    timestamptz
);
CREATE INDEX oauth_flows_expires ON oauth_flows (expires_at);

-- Authorization codes: hash only, short-lived, single use, bound to everything the token
-- request must repeat. used_at is set on the first redemption; a second one revokes session_id.
CREATE TABLE oauth_codes (
    code_hash      bytea PRIMARY KEY,
    flow_id        text NOT NULL,
    client_id      text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri   text NOT NULL,
    code_challenge text NOT NULL,
    resource       text NOT NULL,
    scope          text[] NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL CHECK (expires_at <= created_at + interval '60 seconds'),
    used_at        timestamptz,
    session_id     text REFERENCES sessions (id) ON DELETE SET NULL  -- what the code became
);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);

-- Consent: per user, client and resource; revocable by the user.
CREATE TABLE oauth_consents (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    resource   text NOT NULL,
    scope      text[] NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, client_id, resource)
);

-- OAuth sessions are sessions: the refresh family, revocation by sid and reuse detection of
-- 0003 all apply; these columns bind them to a client and resource (NULL for logins).
ALTER TABLE sessions
    ADD COLUMN client_id text REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    ADD COLUMN resource  text,
    ADD COLUMN scope     text[],
    ADD COLUMN flow_id   text;
CREATE INDEX sessions_client ON sessions (client_id) WHERE client_id IS NOT NULL;
