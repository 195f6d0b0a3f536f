-- The append-only log. position is the gap-free global order (assigned by the single
-- writer inside its transaction); version is the position within the stream.
CREATE TABLE events (
    position    INTEGER PRIMARY KEY,
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL,  -- JSON object
    metadata    TEXT    NOT NULL,  -- JSON object: event_id, causation_id, correlation_id, source
    event_id    TEXT    NOT NULL UNIQUE,
    recorded_at TEXT    NOT NULL,  -- ISO 8601 UTC with microseconds and Z
    UNIQUE (stream, version)
);

-- Append-only is the database's rule, not only the program's.
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: UPDATE refused');
END;

CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: DELETE refused');
END;
