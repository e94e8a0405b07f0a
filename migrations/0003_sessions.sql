-- Sessions (refresh-token families) and revocations.

-- One row per login: the family of refresh tokens descended from it. Its id is the "sid"
-- claim of every access token issued within it.
CREATE TABLE sessions (
    id           text PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,          -- absolute lifetime
    revoked_at   timestamptz,
    revoked_why  text
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens, stored only as SHA-256 hashes. A token is used once: retired_at is set when
-- it is exchanged; presenting a retired token again is reuse and revokes its session.
CREATE TABLE refresh_tokens (
    token_hash   bytea PRIMARY KEY,
    session_id   text NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    idle_expires_at timestamptz NOT NULL,
    retired_at   timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Revoked session ids, held in memory by every replica until the tokens they cover expire.
CREATE TABLE revocations (
    session_id  text PRIMARY KEY,
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX revocations_revoked_at ON revocations (revoked_at);
