-- Calls (docs/CALLS.md): the record the server keeps of every call it relays, call event
-- messages in the chat, and each person's read marker per chat (unread counts).

ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
-- For kind = 'call': the call event as JSON.
ALTER TABLE messages ADD COLUMN meta TEXT;

CREATE TABLE chat_reads (
    chat_id    BIGINT  NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    user_id    BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    last_read  BIGINT  NOT NULL,
    PRIMARY KEY (chat_id, user_id)
);

CREATE TABLE calls (
    call_id          TEXT    PRIMARY KEY,
    chat_id          BIGINT  NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    caller_id        BIGINT  NOT NULL REFERENCES users(id),
    callee_id        BIGINT  NOT NULL REFERENCES users(id),
    caller_device    TEXT,
    answered_device  TEXT,
    state            TEXT    NOT NULL,
    video            BOOLEAN NOT NULL,
    created_at       BIGINT  NOT NULL,
    answered_at      BIGINT ,
    ended_at         BIGINT ,
    outcome          TEXT,
    reason           TEXT,
    ended_by         BIGINT 
);
-- Open calls are few; these find a person's open calls and the ones the sweep must end.
CREATE INDEX calls_open_caller ON calls(caller_id) WHERE state <> 'ended';
CREATE INDEX calls_open_callee ON calls(callee_id) WHERE state <> 'ended';
CREATE INDEX calls_open ON calls(created_at) WHERE state <> 'ended';
-- Finished calls are kept for their chat's history; old ones are deleted by cleanup.
CREATE INDEX calls_ended ON calls(ended_at) WHERE state = 'ended';
