-- A date condition beside a token (`code=…&date=ge…`) is checked either per token entry (a probe
-- by owner) or by scanning the dates' range (by `hi` or `lo`) and joining on id. Both read only
-- the index when it holds the other columns too; without them each match cost a heap fetch,
-- which at 1M resources dominated those queries (87 ms → 12 ms for a recent date on a common
-- code, docs/benchmarks.md).
DROP INDEX search_date_owner;
CREATE INDEX search_date_owner ON search_date (res_type, id) INCLUDE (param, lo, hi);

DROP INDEX search_date_hi;
CREATE INDEX search_date_hi ON search_date (res_type, param, hi) INCLUDE (lo, id);

DROP INDEX search_date_lookup;
CREATE INDEX search_date_lookup ON search_date (res_type, param, lo, hi) INCLUDE (id);
