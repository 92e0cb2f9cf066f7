-- Azure's $bulk-delete jobs, durable like export_jobs. Each batch of deletions commits with the
-- cursor after it, so a restarted job goes on where it stopped and never counts twice.
CREATE TABLE bulk_delete_jobs (
    id          uuid        PRIMARY KEY,
    status      text        NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'cancelled', 'failed')),
    request     text        NOT NULL,
    -- The resource types to walk (in order), fixed when the job starts.
    types       text[],
    -- The search parameters that pick the resources, as a query string.
    query       text        NOT NULL,
    hard        boolean     NOT NULL,
    purge_history boolean   NOT NULL,
    type_index  integer     NOT NULL DEFAULT 0,
    after_id    text,
    -- {"Patient": n, ...}: resources deleted (or purged of history) so far.
    deleted     jsonb       NOT NULL DEFAULT '{}',
    message     text,
    created     timestamptz NOT NULL,
    updated     timestamptz NOT NULL
);
