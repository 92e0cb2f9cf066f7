-- Custom search parameters: the SearchParameter resources themselves are ordinary resources;
-- this table remembers, per canonical url, the definition (signature) whose index is complete.
-- A SearchParameter whose signature has no row here is pending: written resources index it,
-- searches refuse it until a reindex covering its base types completes.
CREATE TABLE search_param_ready (
    url       text        PRIMARY KEY,
    signature text        NOT NULL,
    ready_at  timestamptz NOT NULL
);

-- $reindex jobs, durable: the worker advances `after_type`/`after_id` in the same transaction
-- as each batch's index rows, so a restart resumes where the last committed batch ended.
CREATE TABLE reindex_jobs (
    id         text        PRIMARY KEY,
    -- NULL: every resource type.
    types      text[],
    status     text        NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'cancelled', 'failed')),
    after_type text,
    after_id   text,
    processed  bigint      NOT NULL DEFAULT 0,
    total      bigint      NOT NULL,
    -- url|signature of the parameters that were pending when the job was created.
    params     text[]      NOT NULL,
    created    timestamptz NOT NULL,
    updated    timestamptz NOT NULL,
    message    text
);
