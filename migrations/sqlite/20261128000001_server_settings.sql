-- Values the server generates once and every node must share, e.g. the TURN REST secret when
-- `turn_secret` is not configured: the first node to start writes it, the others read it.
CREATE TABLE server_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
