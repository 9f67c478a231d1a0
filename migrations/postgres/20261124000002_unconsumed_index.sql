-- Acknowledging and fetching only ever look at a recipient's *unconsumed* signals. Consumed rows
-- stay for the retention period (60 s by default), and under load an index over all of them
-- made every acknowledgement walk thousands of consumed rows. This partial index holds only the
-- unconsumed ones; filtering by chat happens on that small set.
DROP INDEX signals_recipient_chat;
CREATE INDEX signals_unconsumed ON signals(recipient_id, seq) WHERE consumed_at IS NULL;
