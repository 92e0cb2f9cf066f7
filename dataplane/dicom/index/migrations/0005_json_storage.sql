-- How the DICOM JSON texts are kept, for the STOW path's sake.
--
-- Compression: about 11 KB per CT instance, compressed as written. pglz, the default, costs
-- about three times lz4's time on them; lz4 is in every PostgreSQL 14+ build this service is
-- known to run on. A server built without it keeps pglz (this changes only how new values are
-- compressed).
--
-- Inline: compressed, an instance's metadata is ~3.7 KB, over the 2 KB past which PostgreSQL
-- moves values out to the TOAST table (two chunk rows and a TOAST index entry per instance,
-- on every store and every /metadata read). Rows up to a page stay in the heap instead.
DO $$
BEGIN
    ALTER TABLE dicom_instances
        ALTER COLUMN metadata SET COMPRESSION lz4,
        ALTER COLUMN instance_json SET COMPRESSION lz4;
    ALTER TABLE dicom_studies ALTER COLUMN study_json SET COMPRESSION lz4;
    ALTER TABLE dicom_series ALTER COLUMN series_json SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'PostgreSQL without lz4: the DICOM JSON columns keep pglz';
END
$$;
ALTER TABLE dicom_instances SET (toast_tuple_target = 8160);
