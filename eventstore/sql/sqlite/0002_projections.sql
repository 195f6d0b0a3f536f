-- How far each named subscriber has processed the log.
CREATE TABLE checkpoints (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
);

-- Read-model rows, written together with their projection's checkpoint.
CREATE TABLE documents (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    doc        TEXT NOT NULL,  -- JSON object
    PRIMARY KEY (collection, key)
) WITHOUT ROWID;
