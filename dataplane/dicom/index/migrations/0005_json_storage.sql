-- The DICOM JSON texts (about 11 KB per CT instance) are compressed by PostgreSQL as they are
-- written. pglz, the default, costs about three times lz4's time on them, on the STOW path; lz4
-- is in every PostgreSQL 14+ build this service is known to run on. A server built without it
-- keeps pglz (this changes only how new values are compressed).
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
