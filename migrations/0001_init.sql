-- Users, groups, our signing keys and the audit trail.

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 128),
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE groups (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_groups (
    user_id  uuid   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);

-- Our own JWT signing keys. The private part is PEM (PKCS#8); it leaves the process only
-- into this table. retired_at: no longer signs; expires_at: no longer verifies.
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    algorithm    text NOT NULL CHECK (algorithm IN ('ES256', 'EdDSA')),
    private_pem  text NOT NULL,
    public_jwk   jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz,
    expires_at   timestamptz
);

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    event       text NOT NULL,
    outcome     text NOT NULL,
    username    text,
    request_id  text,
    client_addr text,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);
CREATE INDEX audit_log_username ON audit_log (username, occurred_at);
