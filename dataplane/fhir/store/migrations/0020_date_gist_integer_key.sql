-- The GiST index of the date rows' spans (0009) led with the type and parameter as text keys
-- (btree_gist): every insert compared text through the database's collation at each level and
-- every page split weighed text unions: 30–40 µs per row in psql (14–15 µs with the integer
-- below), the largest single cost of writing a resource. One integer made from both
-- (`hashtext`, immutable) leads it now and the two are included, so a search still answers from the index alone and rechecks them there (two pairs
-- that share a hash only share index pages). Searches name the integer
-- (`sql::date_rows_key` in the search crate).
DROP INDEX IF EXISTS search_date_range;
CREATE INDEX search_date_range ON search_date
    USING gist (hashtext(res_type || '|' || param), tstzrange(lo, greatest(lo, hi), '[]'))
    INCLUDE (res_type, param, id, lo, hi);
