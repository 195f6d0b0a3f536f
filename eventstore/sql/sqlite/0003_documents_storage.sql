-- Documents are rows of half a kilobyte and more. In a WITHOUT ROWID table the whole row
-- lives in the primary key's b-tree, which suits small rows only: writing and deleting
-- documents measured three times slower than in a rowid table with the same key.
CREATE TABLE documents_rowid (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    doc        TEXT NOT NULL,  -- JSON object
    PRIMARY KEY (collection, key)
);
INSERT INTO documents_rowid (collection, key, doc) SELECT collection, key, doc FROM documents;
DROP TABLE documents;
ALTER TABLE documents_rowid RENAME TO documents;
