-- Named queries of the SQLite backend: "-- name: NAME" starts one. Values are always
-- bound as parameters: "?" in order, or ":name" where one is used twice or more (not
-- "?NNN", which Python 3.12 deprecates with a sequence of values and 3.14 refuses).

-- name: create_schema_version
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at TEXT    NOT NULL
);

-- name: applied_versions
SELECT version FROM schema_version ORDER BY version;

-- name: record_version
INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?);

-- name: last_position
SELECT coalesce(max(position), 0) FROM events;

-- name: stream_version
SELECT coalesce(max(version), 0) FROM events WHERE stream = ?;

-- name: look_up
-- What a group commit needs, in one statement: the last position (kind 0); the current
-- version of each stream in the JSON array :streams (kind 1); the stored events among
-- the event ids in the JSON array :ids (kind 2, columns as read_all, then event_id).
SELECT 0, coalesce(max(position), 0), NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM events
UNION ALL
SELECT 1, stream, max(version), NULL, NULL, NULL, NULL, NULL, NULL
FROM events WHERE stream IN (SELECT value FROM json_each(:streams)) GROUP BY stream
UNION ALL
SELECT 2, position, stream, version, type, data, metadata, recorded_at, event_id
FROM events WHERE event_id IN (SELECT value FROM json_each(:ids));

-- name: insert_event
-- Columns in the order look_up reads a stored event, so a planned row reads like one.
INSERT INTO events (position, stream, version, type, data, metadata, recorded_at, event_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: read_all
SELECT position, stream, version, type, data, metadata, recorded_at
FROM events WHERE position >= ? AND position <= ? ORDER BY position LIMIT ?;

-- name: read_streams
-- A page (:page rows) of the streams after (stream :stream, version :version) and before
-- stream :stop, up to position :until, in (stream, version) order: a range search of the
-- (stream, version) index. The caller keeps the range within a prefix's names.
SELECT position, stream, version, type, data, metadata, recorded_at
FROM events
WHERE (stream, version) > (:stream, :version) AND stream < :stop AND position <= :until
ORDER BY stream, version
LIMIT :page;

-- name: sample_streams
-- The streams (named :prefix...) of the events at the positions in the JSON array
-- :positions, sorted.
SELECT stream FROM events
WHERE position IN (SELECT value FROM json_each(:positions))
  AND substr(stream, 1, length(:prefix)) = :prefix
ORDER BY stream;

-- name: read_stream
SELECT position, stream, version, type, data, metadata, recorded_at
FROM events WHERE stream = ? AND version >= ? ORDER BY version;

-- name: load_checkpoint
SELECT position FROM checkpoints WHERE name = ?;

-- name: save_checkpoint
INSERT INTO checkpoints (name, position) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET position = excluded.position;

-- name: delete_checkpoint
DELETE FROM checkpoints WHERE name = ?;

-- name: upsert_document
INSERT INTO documents (collection, key, doc) VALUES (?, ?, ?)
ON CONFLICT (collection, key) DO UPDATE SET doc = excluded.doc;

-- name: delete_document
DELETE FROM documents WHERE collection = ? AND key = ?;

-- name: delete_collection
DELETE FROM documents WHERE collection = ?;

-- name: get_document
SELECT doc FROM documents WHERE collection = ? AND key = ?;

-- name: get_documents
-- The documents of :collection whose keys are in the JSON array :keys.
SELECT key, doc FROM documents
WHERE collection = :collection AND key IN (SELECT value FROM json_each(:keys));

-- name: document_keys
-- The keys of :collection from :start up to (not including) :stop, at most :most (-1:
-- all): a range of the primary key.
SELECT key FROM documents
WHERE collection = :collection AND key >= :start AND key < :stop ORDER BY key
LIMIT :most;

-- name: document_keys_to_end
SELECT key FROM documents WHERE collection = :collection AND key >= :start ORDER BY key
LIMIT :most;

-- name: query_documents
-- Filters come as JSON objects {field: value}, so the text never changes.
SELECT key, doc FROM documents AS d
WHERE collection = :collection
  AND (:after IS NULL OR key > :after)
  AND NOT EXISTS (
      SELECT 1 FROM json_each(:equals) AS f
      WHERE CAST(json_extract(d.doc, '$."' || f.key || '"') AS TEXT) IS NOT f.value)
  AND NOT EXISTS (
      SELECT 1 FROM json_each(:at_least) AS f
      WHERE CAST(json_extract(d.doc, '$."' || f.key || '"') AS TEXT) IS NULL
         OR CAST(json_extract(d.doc, '$."' || f.key || '"') AS TEXT) < f.value)
ORDER BY key
LIMIT :most;
