-- $export jobs, durable. A worker holds a session advisory lock on the job it runs (so a job
-- whose worker died is free again the moment its connection closes) and records each finished
-- file with the cursor after it: a restart resumes after the last recorded file.
CREATE TABLE export_jobs (
    id               uuid        PRIMARY KEY,
    status           text        NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'cancelled', 'failed')),
    -- The kick-off request's URL, as the manifest repeats it.
    request          text        NOT NULL,
    -- system, patient or group; a group export lists the Group's patients at kick-off.
    level            text        NOT NULL,
    patients         text[],
    -- NULL: every type that has resources (system) or is in the Patient compartment.
    types            text[],
    since            timestamptz,
    -- Resources are exported as they were at this instant, whatever happens after.
    transaction_time timestamptz NOT NULL,
    -- Where the next file starts: the type (index into types) and the last id written (each
    -- type is walked in descending id order).
    type_index       integer     NOT NULL DEFAULT 0,
    after_id         text,
    file_index       integer     NOT NULL DEFAULT 0,
    -- [{"type", "file", "count"}] of the finished files.
    output           jsonb       NOT NULL DEFAULT '[]',
    exported         bigint      NOT NULL DEFAULT 0,
    message          text,
    created          timestamptz NOT NULL,
    updated          timestamptz NOT NULL
);
