-- Date searches read the GiST index of the rows' spans (0009: type, parameter and span, with id
-- and bounds included), and per-resource probes and sorts read the owner index; the two btrees
-- on (type, parameter, lo/hi) went unused through the search benchmark's every shape
-- (pg_stat_user_indexes), and dropping them changed none of its date shapes' times. They cost
-- two btree inserts per date row on every write.
DROP INDEX IF EXISTS search_date_lookup;
DROP INDEX IF EXISTS search_date_hi;
