-- table checkpoints
CREATE TABLE checkpoints (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
);

-- table documents
CREATE TABLE "documents" (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    doc        TEXT NOT NULL,  -- JSON object
    PRIMARY KEY (collection, key)
);

-- table events
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

-- table schema_version
CREATE TABLE schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at TEXT    NOT NULL
);

-- trigger events_refuse_delete
CREATE TRIGGER events_refuse_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: DELETE refused');
END;

-- trigger events_refuse_update
CREATE TRIGGER events_refuse_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: UPDATE refused');
END;

