-- The DICOM metadata index. Instance files live in the blob store; these tables say which
-- instances exist, where their files are, and hold what QIDO matches on and returns, so that
-- no query or metadata request reads a file.

-- Every store of an instance gets a new watermark: the change feed tells by it whether an entry
-- is still the instance's current version, and metadata ETags change with it.
CREATE SEQUENCE dicom_watermark;

CREATE TABLE dicom_studies (
    partition text NOT NULL,
    study_uid text NOT NULL,
    patient_id text,
    patient_name text,
    -- PatientName lowercased, with the component (^) and group (=) separators as spaces:
    -- what case-insensitive and fuzzy (word-prefix) matching compare with.
    patient_name_words text,
    patient_birth_date date,
    study_date date,
    accession_number text,
    referring_physician_words text,
    study_description text,
    -- The study-level attributes (patient and study modules) of the latest stored instance, as
    -- DICOM JSON object members: what QIDO returns for the study.
    study_json text NOT NULL,
    PRIMARY KEY (partition, study_uid)
);
CREATE INDEX dicom_studies_patient_id ON dicom_studies (partition, patient_id);
CREATE INDEX dicom_studies_patient_name ON dicom_studies (partition, patient_name_words text_pattern_ops);
CREATE INDEX dicom_studies_study_date ON dicom_studies (partition, study_date);
CREATE INDEX dicom_studies_accession ON dicom_studies (partition, accession_number);

CREATE TABLE dicom_series (
    partition text NOT NULL,
    study_uid text NOT NULL,
    series_uid text NOT NULL,
    modality text,
    pps_start_date date,
    manufacturer_model_name text,
    series_json text NOT NULL,
    PRIMARY KEY (partition, study_uid, series_uid),
    FOREIGN KEY (partition, study_uid) REFERENCES dicom_studies ON DELETE CASCADE
);
CREATE INDEX dicom_series_uid ON dicom_series (partition, series_uid);
CREATE INDEX dicom_series_modality ON dicom_series (partition, modality, study_uid);

CREATE TABLE dicom_instances (
    partition text NOT NULL,
    study_uid text NOT NULL,
    series_uid text NOT NULL,
    sop_uid text NOT NULL,
    sop_class_uid text NOT NULL,
    instance_number integer,
    transfer_syntax text NOT NULL,
    watermark bigint NOT NULL DEFAULT nextval('dicom_watermark'),
    -- Each store writes a new file (its key carries a fresh UUID), so a replaced instance's old
    -- file is never overwritten while a reader may be streaming it.
    blob text NOT NULL,
    size bigint NOT NULL,
    -- The instance's whole data set as DICOM JSON, large binary values as relative
    -- BulkDataURIs: /metadata is these texts joined, whatever the study's size.
    metadata text NOT NULL,
    instance_json text NOT NULL,
    created timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partition, study_uid, series_uid, sop_uid),
    FOREIGN KEY (partition, study_uid, series_uid) REFERENCES dicom_series ON DELETE CASCADE
);
-- A SOP Instance UID names one instance in a partition, whatever study a sender puts it in.
CREATE UNIQUE INDEX dicom_instances_sop ON dicom_instances (partition, sop_uid);

-- The change feed: one row per create, replace or delete of an instance. Writers do not
-- serialise: each inserts its rows under a shared advisory lock held to commit, and a row gets
-- its public sequence number (`seq`) from whoever reads the feed next (`changefeed::sequence`),
-- under the same lock taken exclusively, so only committed rows are numbered, in `id` order.
-- Entries appear in `seq` order, and a reader following by sequence never skips one.
CREATE TABLE dicom_changes (
    id bigserial PRIMARY KEY,
    seq bigint UNIQUE,
    ts timestamptz NOT NULL DEFAULT clock_timestamp(),
    action text NOT NULL CHECK (action IN ('Create', 'Update', 'Delete')),
    partition text NOT NULL,
    study_uid text NOT NULL,
    series_uid text NOT NULL,
    sop_uid text NOT NULL,
    watermark bigint NOT NULL
);
CREATE INDEX dicom_changes_unsequenced ON dicom_changes (id) WHERE seq IS NULL;
CREATE INDEX dicom_changes_ts ON dicom_changes (ts, seq);
