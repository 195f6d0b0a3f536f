-- Named queries of the PostgreSQL backend: "-- name: NAME" starts one. Values are
-- always bound as parameters.

-- name: create_schema_version
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER     PRIMARY KEY,
    name       TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- name: lock_migrations
-- Two processes opening the same database at once migrate one after the other.
SELECT pg_advisory_xact_lock(7358201946);

-- name: try_claim
-- A session lock on role $1 in this schema (two stores in one database are two stores);
-- it ends with the connection, so a killed process leaves nothing to clean up.
SELECT pg_try_advisory_lock(hashtext('spotsync'), hashtext(current_schema() || '/' || $1));

-- name: end_own_stale_claims
-- Ends the sessions that hold role $1 (as try_claim takes it) under application name $2,
-- this store's own, other than this one: a connection of this store that went silent
-- (a network that drops packets rather than the connection), which the server has not
-- noticed yet. A row per session asked to end.
SELECT pg_terminate_backend(l.pid)
FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = hashtext('spotsync')::oid
  AND l.objid = hashtext(current_schema() || '/' || $1)::oid
  AND a.application_name = $2 AND l.pid <> pg_backend_pid();

-- name: refresh_statistics
-- The planner's statistics of the tables a bulk load filled (autovacuum comes later).
ANALYZE events, documents;

-- name: applied_versions
SELECT version FROM schema_version ORDER BY version;

-- name: record_version
INSERT INTO schema_version (version, name) VALUES ($1, $2);

-- name: lock_positions
-- Locks the counter row until commit: see 0001_events.sql for why.
SELECT last_position FROM event_positions FOR UPDATE;

-- name: last_position
SELECT coalesce(max(position), 0) FROM events;

-- name: stream_version
SELECT coalesce(max(version), 0) FROM events WHERE stream = $1;

-- name: look_up
-- For a batch of appends, in one round trip: the stored events among the event ids $1
-- (position not null), then the current version of each stream in $2 (position null).
SELECT position, stream, version, type, data, metadata, recorded_at, event_id
FROM events WHERE event_id = ANY($1::text[])
UNION ALL
SELECT NULL, stream, max(version), NULL, NULL, NULL, NULL, NULL
FROM events WHERE stream = ANY($2::text[]) GROUP BY stream;

-- name: insert_events
-- Inserts the batch and moves the counter past it ($9) in one statement. The
-- notification ($10 is the channel) is delivered only if the append commits.
WITH inserted AS (
    INSERT INTO events (position, stream, version, type, data, metadata, event_id, recorded_at)
    SELECT p, s, v, t, d, m, i, r::timestamptz
    FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::text[], $5::json[],
                $6::json[], $7::text[], $8::text[]) AS u (p, s, v, t, d, m, i, r)
)
UPDATE event_positions SET last_position = $9
RETURNING pg_notify($10, last_position::text);

-- name: read_all
SELECT position, stream, version, type, data, metadata, recorded_at
FROM events WHERE position >= $1 AND position <= $2 ORDER BY position LIMIT $3;

-- name: read_streams
-- A page ($6 rows) of the streams after (stream $1, version $2) and before stream $3
-- whose names start with $4, up to position $5, in (stream, version) order: a range
-- search of the (stream, version) index. Times as text, the way the other stores keep it.
SELECT position, stream, version, type, data, metadata,
       to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM events
WHERE (stream, version) > ($1, $2) AND stream < $3
  AND starts_with(stream, $4) AND position <= $5
ORDER BY stream, version
LIMIT $6;

-- name: read_streams_to_end
-- read_streams with no upper bound ($3 is unused).
SELECT position, stream, version, type, data, metadata,
       to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM events
WHERE (stream, version) > ($1, $2) AND $3::text IS NULL
  AND starts_with(stream, $4) AND position <= $5
ORDER BY stream, version
LIMIT $6;

-- name: sample_streams
-- The streams (named $2...) of the events at the positions $1, in the database's order.
SELECT stream FROM events
WHERE position = ANY($1::bigint[]) AND starts_with(stream, $2)
ORDER BY stream;

-- name: read_stream
SELECT position, stream, version, type, data, metadata, recorded_at
FROM events WHERE stream = $1 AND version >= $2 ORDER BY version;

-- name: load_checkpoint
SELECT position FROM checkpoints WHERE name = $1;

-- name: save_checkpoint
INSERT INTO checkpoints (name, position) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET position = excluded.position;

-- name: delete_checkpoint
DELETE FROM checkpoints WHERE name = $1;

-- name: upsert_document
INSERT INTO documents (collection, key, doc) VALUES ($1, $2, $3::jsonb)
ON CONFLICT (collection, key) DO UPDATE SET doc = excluded.doc;

-- name: delete_document
DELETE FROM documents WHERE collection = $1 AND key = $2;

-- name: delete_collection
DELETE FROM documents WHERE collection = $1;

-- name: get_document
SELECT doc::text FROM documents WHERE collection = $1 AND key = $2;

-- name: get_documents
SELECT key, doc::text FROM documents WHERE collection = $1 AND key = ANY($2::text[]);

-- name: document_keys
-- The keys of collection $1 from $2 up to (not including) $3, at most $4 (null: all): a
-- range of the primary key.
SELECT key FROM documents WHERE collection = $1 AND key >= $2 AND key < $3 ORDER BY key
LIMIT $4;

-- name: document_keys_to_end
SELECT key FROM documents WHERE collection = $1 AND key >= $2 ORDER BY key LIMIT $3;

-- name: query_documents
-- Filters come as parallel arrays (field names and values), so the text never changes.
SELECT key, doc::text FROM documents d
WHERE collection = $1
  AND ($2::text IS NULL OR key > $2)
  AND NOT EXISTS (
      SELECT 1 FROM unnest($3::text[], $4::text[]) AS f(field, value)
      WHERE (d.doc ->> f.field) IS DISTINCT FROM f.value)
  AND NOT EXISTS (
      SELECT 1 FROM unnest($5::text[], $6::text[]) AS f(field, value)
      WHERE (d.doc ->> f.field) IS NULL OR (d.doc ->> f.field) COLLATE "C" < f.value)
ORDER BY key
LIMIT $7;
