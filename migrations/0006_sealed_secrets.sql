-- Private key material sealed with the key-encryption key, which is not in the database
-- (auth_service/key_encryption.py): AES-256-GCM, bound to its row. The clear-text columns stay
-- only for rows written before this migration; every start seals them and empties the column.
ALTER TABLE signing_keys
    ALTER COLUMN private_pem DROP NOT NULL,
    ADD COLUMN private_key_sealed bytea,
    ADD CONSTRAINT signing_keys_one_private_key
        CHECK (num_nonnulls(private_pem, private_key_sealed) = 1);

ALTER TABLE service_secrets
    ALTER COLUMN value DROP NOT NULL,
    ADD COLUMN value_sealed bytea,
    ADD CONSTRAINT service_secrets_one_value CHECK (num_nonnulls(value, value_sealed) = 1);
