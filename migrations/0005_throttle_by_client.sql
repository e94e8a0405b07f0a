-- Login throttling keyed by account and client together (issue 16, M2), by keyed digests
-- rather than submitted names (L7). Keys are now 'client:<account>@<address>',
-- 'address:<address>', 'account:<account>' and 'device:<id>', where <account> is a user's
-- id, or '~' and an HMAC of a name that is no user's. The counters of the old keys
-- ('user:<name>', 'addr:<ip>') live minutes; they are dropped rather than converted.
DELETE FROM login_throttle;
ALTER TABLE login_throttle ADD COLUMN account text;  -- <account> of the key; for user unlock
CREATE INDEX login_throttle_account ON login_throttle (account) WHERE account IS NOT NULL;
-- The auth_login_locked gauge counts the locks in force at every scrape.
CREATE INDEX login_throttle_locked_until ON login_throttle (locked_until)
    WHERE locked_until IS NOT NULL;
