-- Secrets shared by every replica (for example the key that signs CSRF tokens).
CREATE TABLE service_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL CHECK (octet_length(value) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
