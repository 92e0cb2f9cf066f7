-- String rows were indexed on their whole normal form, then the id: a prefix search read every
-- row under the prefix and sorted their ids to cut the page (`Patient?name=Mar`: 4,840 rows at
-- 1M resources, about 1 ms of PostgreSQL's time per page). Keyed on the first three characters
-- and then the id, the rows of a prefix of three or more characters are read in id order and the
-- page ends once it is full; the whole normal form is included, so a longer prefix or an exact
-- value is checked in the index. Searches write the key as the index does
-- (`sql::prefix_cond` in the search crate).
DROP INDEX IF EXISTS search_string_lookup;
CREATE INDEX search_string_lookup ON search_string
    (res_type, param, left(norm, 3) text_pattern_ops, id) INCLUDE (norm);
