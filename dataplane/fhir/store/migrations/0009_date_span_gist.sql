-- A date range alone (`date=ge…&date=lt…`) is answered from the GiST index of the rows' spans.
-- It held only the span, so every candidate row was fetched from the heap to check its type,
-- parameter and id: at 1M resources a one-week window read 1,200 heap pages (168 ms cold) for
-- 650 matches. With type and parameter as leading keys (btree_gist, a trusted extension since
-- PostgreSQL 13) and the id and bounds included, the index answers alone (an index-only scan).
CREATE EXTENSION IF NOT EXISTS btree_gist;
DROP INDEX search_date_range;
CREATE INDEX search_date_range ON search_date
    USING gist (res_type, param, tstzrange(lo, greatest(lo, hi), '[]')) INCLUDE (id, lo, hi);
