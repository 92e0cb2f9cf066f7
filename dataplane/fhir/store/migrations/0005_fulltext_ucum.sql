-- `_text` (the narrative) and `_content` (every string in the resource) as full-text vectors,
-- one row per resource. GIN finds the matching documents; the primary key joins them back.
-- The 'simple' configuration neither stems nor drops stop words: the text arrives already
-- lower-cased and accent-free from the search crate, in whatever language the resource is in.
CREATE TABLE search_text (
    res_type  text     NOT NULL,
    id        text     NOT NULL,
    narrative tsvector NOT NULL,
    content   tsvector NOT NULL,
    PRIMARY KEY (res_type, id)
);
CREATE INDEX search_text_narrative ON search_text USING gin (narrative);
CREATE INDEX search_text_content ON search_text USING gin (content);

-- UCUM quantities also in canonical base units (`canon_dim` is the dimension, e.g. `g.m-3`),
-- so that 100 mg/dL is found by a search in g/L. Rows written before this migration get them
-- with the next $reindex.
ALTER TABLE search_quantity
    ADD COLUMN canon_dim text,
    ADD COLUMN canon_lo  numeric,
    ADD COLUMN canon_hi  numeric;
CREATE INDEX search_quantity_canon ON search_quantity (res_type, param, canon_dim, canon_lo)
    WHERE canon_dim IS NOT NULL;
