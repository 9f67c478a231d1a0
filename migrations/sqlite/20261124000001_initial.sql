-- Switchboard's schema. Times are unix milliseconds (INTEGER) so TTL checks are plain comparisons.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,      -- lowercase, see domain::Username
    display_name  TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,             -- Argon2id PHC string
    created_at    INTEGER NOT NULL
);

-- A session is found by the SHA-256 of its cookie: a copy of this table logs nobody in.
CREATE TABLE sessions (
    token_hash  TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE chats (
    id          INTEGER PRIMARY KEY,
    title       TEXT,
    created_by  INTEGER NOT NULL REFERENCES users(id),
    created_at  INTEGER NOT NULL
);

CREATE TABLE chat_participants (
    chat_id  INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_participants_user ON chat_participants(user_id);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    chat_id     INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    sender_id   INTEGER NOT NULL REFERENCES users(id),
    body        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX messages_chat ON messages(chat_id, id);

-- One row per (sender, signal_id): the idempotency record that makes retries and the dual-path
-- send store a signal once. Kept as long as an unconsumed signal may live.
CREATE TABLE signal_sends (
    sender_id   INTEGER NOT NULL,
    signal_id   TEXT    NOT NULL,
    chat_id     INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    to_user     INTEGER,
    recipients  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (sender_id, signal_id)
);
CREATE INDEX signal_sends_created ON signal_sends(created_at);

-- The last seq handed out per recipient. Allocating from a counter row in the same transaction
-- as the insert keeps seq gap-free and in commit order, even after old signals are deleted.
CREATE TABLE signal_counters (
    user_id   INTEGER PRIMARY KEY,
    last_seq  INTEGER NOT NULL
);

-- One row per recipient of a signal (the guide's P2PSignal).
CREATE TABLE signals (
    id            INTEGER PRIMARY KEY,
    recipient_id  INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    chat_id       INTEGER NOT NULL,
    sender_id     INTEGER NOT NULL,
    signal_id     TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    is_call       INTEGER NOT NULL,             -- webrtc.* / call.*: subject to the call TTL
    payload       TEXT    NOT NULL,             -- the client's JSON, verbatim
    created_at    INTEGER NOT NULL,
    consumed_at   INTEGER,                      -- NULL = unconsumed (the guide's is_consumed)
    expired_at    INTEGER,                      -- set once a call signal is seen expired unread
    UNIQUE (recipient_id, seq)
);
CREATE INDEX signals_recipient_chat ON signals(recipient_id, chat_id, seq);
CREATE INDEX signals_created ON signals(created_at);
