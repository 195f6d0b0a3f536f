-- SQLite moved its documents out of a WITHOUT ROWID table (large rows write faster in a
-- rowid table). PostgreSQL keeps every table in a heap already: nothing changes here.
SELECT 1;
