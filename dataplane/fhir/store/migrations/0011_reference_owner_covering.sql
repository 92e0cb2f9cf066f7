-- `_has`, `_revinclude` and chains look up a referrer's reference rows by its (type, id) and
-- one parameter. With the parameter in the key and the target covered that is an index-only
-- scan; the plain (res_type, id) index visited the heap for every referrer: 782 visits and
-- 1,525 pages read for Patient?_has:Observation:patient:code=<a rare lab> at 1M resources
-- (docs/benchmarks.md, "Search at scale").
DROP INDEX search_reference_owner;
CREATE INDEX search_reference_owner ON search_reference (res_type, id, param)
    INCLUDE (target_type, target_id);
