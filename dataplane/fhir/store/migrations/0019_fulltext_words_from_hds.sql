-- `_text`/`_content` vectors are built by hds from now on (the search crate's fulltext.rs), with
-- its own word boundaries (runs of letters and digits) rather than PostgreSQL's parser, and
-- search values are cut into words by the same rule. Vectors written before keep the parser's
-- lexemes, which plain words still match but hyphenated words, URLs and numbers may not: a
-- reindex of every resource rewrites them, queued here when there are any (the server's reindex
-- worker runs it in the background).
INSERT INTO reindex_jobs (id, types, status, processed, total, params, created, updated, message)
SELECT gen_random_uuid()::text, NULL, 'queued', 0,
       (SELECT count(*) FROM resources WHERE NOT deleted), '{}', now(), now(),
       'queued by migration 0019: full-text words are now cut by hds'
 WHERE EXISTS (SELECT 1 FROM search_text);
