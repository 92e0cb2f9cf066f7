-- How far the DICOM→FHIR sync has followed the change feed (one row), and the last problem it
-- met, so a restart resumes where it stopped and an operator can see why a study is missing.
CREATE TABLE dicom_fhir_sync (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_sequence bigint NOT NULL DEFAULT 0,
    last_error text,
    updated timestamptz NOT NULL DEFAULT now()
);
INSERT INTO dicom_fhir_sync DEFAULT VALUES;
