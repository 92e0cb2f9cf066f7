-- Search pages are ordered by id. With `id` last in a lookup index, an equality search
-- (token system|code, reference target) reads its matches already in id order, straight from
-- the index, so a page of 20 out of 50,000 matches stops after about 20 index entries instead
-- of fetching and sorting all of them; range searches (string prefixes) at least skip the heap.
-- Measured on the 1M-resource benchmark: Observation?code=...&date=ge... went from 600 ms to
-- under 1 ms (docs/benchmarks.md, "Search at scale").
DROP INDEX search_token_lookup;
CREATE INDEX search_token_lookup ON search_token (res_type, param, code, system, id);

DROP INDEX search_string_lookup;
CREATE INDEX search_string_lookup ON search_string (res_type, param, norm text_pattern_ops, id);

DROP INDEX search_reference_lookup;
CREATE INDEX search_reference_lookup ON search_reference (res_type, param, target_id, target_type, id);
DROP INDEX search_reference_target;
CREATE INDEX search_reference_target ON search_reference (target_type, target_id, res_type, param, id);

-- The planner's default random_page_cost (4) models spinning disks and steers it away from
-- the index plans above on SSDs and in cache; 1.1 is the usual setting for both. It is set on
-- this service's own database only, and skipped where the role may not alter it.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET random_page_cost = 1.1', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'random_page_cost left as it is: %', SQLERRM;
END
$$;
