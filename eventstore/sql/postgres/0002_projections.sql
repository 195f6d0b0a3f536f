-- How far each named subscriber has processed the log.
CREATE TABLE checkpoints (
    name     TEXT   PRIMARY KEY,
    position BIGINT NOT NULL
);

-- Read-model rows, written together with their projection's checkpoint. Keys sort by
-- code point (COLLATE "C"), the same order as the other backends.
CREATE TABLE documents (
    collection TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    doc        JSONB NOT NULL,
    PRIMARY KEY (collection, key)
);
