-- Login throttling shared by every replica: failures per account and per client address.
CREATE TABLE login_throttle (
    key           text PRIMARY KEY,          -- 'user:<name>' or 'addr:<ip>'
    failures      integer NOT NULL DEFAULT 0, -- within the current window
    window_start  timestamptz NOT NULL DEFAULT now(),
    lockouts      integer NOT NULL DEFAULT 0, -- consecutive lockouts: the back-off exponent
    locked_until  timestamptz
);
