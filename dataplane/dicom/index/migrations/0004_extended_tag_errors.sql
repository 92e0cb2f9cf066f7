-- What the reindex of an extended query tag could not index (Azure's
-- `/extendedquerytags/{tag}/errors`): one row per instance and tag. An instance stored again or
-- deleted takes its rows with it; a deleted tag takes its own.
CREATE TABLE dicom_tag_errors (
    tag text NOT NULL REFERENCES dicom_extended_tags ON DELETE CASCADE,
    partition text NOT NULL,
    study_uid text NOT NULL,
    series_uid text NOT NULL,
    sop_uid text NOT NULL,
    message text NOT NULL,
    created timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tag, partition, sop_uid)
);
CREATE INDEX dicom_tag_errors_instance ON dicom_tag_errors (partition, sop_uid);
