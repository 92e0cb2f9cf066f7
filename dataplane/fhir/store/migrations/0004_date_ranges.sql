-- A range-overlap index for date searches. A window such as date=ge2015-05-22&date=lt2015-05-29
-- is two open half-lines to a btree (hi > start, lo < end), each matching a large share of the
-- rows; as a range it is small. The search adds a redundant overlap condition on exactly this
-- expression (closed, and never inverted even for a Period whose end precedes its start), which
-- the planner may answer from this index. Core GiST supports ranges; no extension is needed.
CREATE INDEX search_date_range ON search_date USING gist (tstzrange(lo, greatest(lo, hi), '[]'));
