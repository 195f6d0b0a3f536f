-- The append-only log. position is the gap-free global order; version is the position
-- within the stream. JSON (not JSONB) keeps payloads exactly as they were appended.
CREATE TABLE events (
    position    BIGINT      PRIMARY KEY,
    stream      TEXT        NOT NULL,
    version     INTEGER     NOT NULL,
    type        TEXT        NOT NULL,
    data        JSON        NOT NULL,
    metadata    JSON        NOT NULL,
    event_id    TEXT        NOT NULL UNIQUE,
    recorded_at TIMESTAMPTZ NOT NULL,
    UNIQUE (stream, version)
);

-- The last assigned position, in one row. An append locks this row (UPDATE) before it
-- takes positions and keeps the lock until it commits, so appends commit one after the
-- other in position order: a reader can never see position N+1 while N is still
-- uncommitted, and a rolled-back append gives its positions back (no gaps).
CREATE TABLE event_positions (
    singleton     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    last_position BIGINT  NOT NULL
);
INSERT INTO event_positions (singleton, last_position) VALUES (TRUE, 0);

-- Append-only is the database's rule, not only the program's.
CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER events_refuse_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();
