-- Switchboard's schema for PostgreSQL: the same tables as migrations/sqlite, in PostgreSQL types.
-- Times are unix milliseconds (BIGINT) so TTL checks are plain comparisons.

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,      -- lowercase, see domain::Username
    display_name  TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,             -- Argon2id PHC string
    created_at    BIGINT  NOT NULL
);

-- A session is found by the SHA-256 of its cookie: a copy of this table logs nobody in.
CREATE TABLE sessions (
    token_hash  TEXT    PRIMARY KEY,
    user_id     BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE chats (
    id          BIGSERIAL PRIMARY KEY,
    title       TEXT,
    created_by  BIGINT  NOT NULL REFERENCES users(id),
    created_at  BIGINT  NOT NULL
);

CREATE TABLE chat_participants (
    chat_id  BIGINT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_participants_user ON chat_participants(user_id);

CREATE TABLE messages (
    id          BIGSERIAL PRIMARY KEY,
    chat_id     BIGINT  NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    sender_id   BIGINT  NOT NULL REFERENCES users(id),
    body        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX messages_chat ON messages(chat_id, id);

-- One row per (sender, signal_id): the idempotency record that makes retries and the dual-path
-- send store a signal once. Kept as long as an unconsumed signal may live.
CREATE TABLE signal_sends (
    sender_id   BIGINT  NOT NULL,
    signal_id   TEXT    NOT NULL,
    chat_id     BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,
    to_user     BIGINT,
    recipients  BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (sender_id, signal_id)
);
CREATE INDEX signal_sends_created ON signal_sends(created_at);

-- The last seq handed out per recipient. The row stays locked by the inserting transaction
-- until it commits, so with concurrent writers on several nodes seq still follows commit order.
CREATE TABLE signal_counters (
    user_id   BIGINT PRIMARY KEY,
    last_seq  BIGINT NOT NULL
);

-- One row per recipient of a signal (the guide's P2PSignal).
CREATE TABLE signals (
    id            BIGSERIAL PRIMARY KEY,
    recipient_id  BIGINT  NOT NULL,
    seq           BIGINT  NOT NULL,
    chat_id       BIGINT  NOT NULL,
    sender_id     BIGINT  NOT NULL,
    signal_id     TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    is_call       BOOLEAN NOT NULL,             -- webrtc.* / call.*: subject to the call TTL
    payload       TEXT    NOT NULL,             -- the client's JSON, verbatim
    created_at    BIGINT  NOT NULL,
    consumed_at   BIGINT,                       -- NULL = unconsumed (the guide's is_consumed)
    expired_at    BIGINT,                       -- set once a call signal is seen expired unread
    UNIQUE (recipient_id, seq)
);
CREATE INDEX signals_recipient_chat ON signals(recipient_id, chat_id, seq);
CREATE INDEX signals_created ON signals(created_at);
