-- One row per logical resource: where its current version is, and whether it is deleted.
-- The bodies live in resource_versions only, so a write stores each JSON text once.
CREATE TABLE resources (
    res_type     text        NOT NULL,
    id           text        NOT NULL,
    version_id   bigint      NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean     NOT NULL,
    PRIMARY KEY (res_type, id)
);
CREATE INDEX resources_last_updated ON resources (res_type, last_updated) WHERE NOT deleted;

-- Every kept version, the current one included. body is the exact JSON the server returns
-- (meta already set) so reads stream it without re-serialising; it is NULL for a deletion.
-- seq orders history across the whole server and is the keyset for history paging.
CREATE TABLE resource_versions (
    seq          bigserial   NOT NULL,
    res_type     text        NOT NULL,
    id           text        NOT NULL,
    version_id   bigint      NOT NULL,
    last_updated timestamptz NOT NULL,
    method       text        NOT NULL,
    body         text,
    PRIMARY KEY (res_type, id, version_id)
);
CREATE UNIQUE INDEX resource_versions_seq ON resource_versions (seq);
CREATE INDEX resource_versions_type_seq ON resource_versions (res_type, seq);
CREATE INDEX resource_versions_last_updated ON resource_versions (last_updated);

-- Search index rows of the current version of each resource, written in the same transaction
-- as the resource. Token parameters for now; the search issue adds the other types.
CREATE TABLE search_token (
    res_type text NOT NULL,
    id       text NOT NULL,
    param    text NOT NULL,
    system   text,
    code     text NOT NULL
);
CREATE INDEX search_token_lookup ON search_token (res_type, param, code, system);
CREATE INDEX search_token_owner ON search_token (res_type, id);
