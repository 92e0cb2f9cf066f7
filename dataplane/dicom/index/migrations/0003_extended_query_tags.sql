-- Extended query tags (Azure's): attributes made searchable after the fact. A tag is `Adding`
-- while its reindex operation fills `dicom_tag_values` from the instances stored before it,
-- then `Ready`; stores made after it was added index it at once.
CREATE TABLE dicom_extended_tags (
    tag text PRIMARY KEY,             -- 8 upper-case hex digits
    vr text NOT NULL,
    private_creator text,
    level text NOT NULL CHECK (level IN ('Study', 'Series', 'Instance')),
    status text NOT NULL CHECK (status IN ('Adding', 'Ready')),
    query_enabled boolean NOT NULL DEFAULT true,
    operation uuid,
    created timestamptz NOT NULL DEFAULT now()
);

-- One row per instance holding a value of a tag. Matching at the study or series level asks
-- whether any instance of it has the value.
CREATE TABLE dicom_tag_values (
    tag text NOT NULL REFERENCES dicom_extended_tags ON DELETE CASCADE,
    partition text NOT NULL,
    study_uid text NOT NULL,
    series_uid text NOT NULL,
    sop_uid text NOT NULL,
    text_value text,
    number_value double precision,
    date_value date,
    PRIMARY KEY (tag, partition, sop_uid)
);
CREATE INDEX dicom_tag_values_text ON dicom_tag_values (tag, text_value text_pattern_ops);
CREATE INDEX dicom_tag_values_number ON dicom_tag_values (tag, number_value);
CREATE INDEX dicom_tag_values_date ON dicom_tag_values (tag, date_value);
CREATE INDEX dicom_tag_values_instance ON dicom_tag_values (partition, sop_uid);

-- Long-running operations (`/operations/{id}`): today the reindex of added tags. The cursor is
-- the last (partition, SOP Instance UID) done, committed with each batch's values.
CREATE TABLE dicom_operations (
    id uuid PRIMARY KEY,
    kind text NOT NULL,
    status text NOT NULL CHECK (status IN ('notStarted', 'running', 'completed', 'failed')),
    tags text[] NOT NULL,
    -- Stores that began before the tags existed may not have indexed them; the reindex waits
    -- until every transaction older than this one has ended.
    start_xid xid8 NOT NULL,
    total bigint,
    done bigint NOT NULL DEFAULT 0,
    cursor_partition text,
    cursor_sop text,
    error text,
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now()
);
