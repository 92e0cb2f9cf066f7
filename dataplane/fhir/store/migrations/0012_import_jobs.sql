-- $import jobs, durable like export_jobs. The worker reads each input's NDJSON from a byte
-- offset and commits every chunk's resources, its error rows and the offset after it in one
-- transaction, so a restarted job resumes at the first line not yet committed and no line is
-- imported twice or lost.
CREATE TABLE import_jobs (
    id               uuid        PRIMARY KEY,
    status           text        NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'cancelled', 'failed')),
    request          text        NOT NULL,
    -- InitialLoad or IncrementalLoad, as Azure spells them.
    mode             text        NOT NULL,
    -- [{"type": <resource type or null>, "url": <input URL as given>, "path": <object path>}]
    inputs           jsonb       NOT NULL,
    -- The input being read, the byte offset of its next line and that line's number - 1.
    input_index      integer     NOT NULL DEFAULT 0,
    byte_offset      bigint      NOT NULL DEFAULT 0,
    line_no          bigint      NOT NULL DEFAULT 0,
    -- Per input, in the order of inputs: lines imported, and lines refused.
    succeeded        bigint[]    NOT NULL,
    failed           bigint[]    NOT NULL,
    transaction_time timestamptz NOT NULL,
    message          text,
    created          timestamptz NOT NULL,
    updated          timestamptz NOT NULL
);

-- One row per line that could not be imported, kept with its job: the manifest's error files
-- are read from here.
CREATE TABLE import_errors (
    job         uuid    NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    input_index integer NOT NULL,
    line_no     bigint  NOT NULL,
    outcome     text    NOT NULL,
    PRIMARY KEY (job, input_index, line_no)
);
