-- Index rows for every search parameter type, one table per type so that each has the column
-- types and btree indexes its comparisons need. All rows describe the current version of
-- (res_type, id) and are replaced in the same transaction as the resource.
--
-- Each table has a lookup index led by (res_type, param, <value>), which serves a search on one
-- parameter, and an owner index on (res_type, id), which serves replacing a resource's rows and
-- the EXISTS probes that AND several parameters together.

-- Coding.display / CodeableConcept.text, normalised like strings, for the :text modifier.
ALTER TABLE search_token ADD COLUMN display text;

-- Strings are kept twice: `norm` (lower case, accents removed) for the default prefix match and
-- :contains, `exact` for :exact.
CREATE TABLE search_string (
    res_type text NOT NULL,
    id       text NOT NULL,
    param    text NOT NULL,
    norm     text NOT NULL,
    exact    text NOT NULL
);
CREATE INDEX search_string_lookup ON search_string (res_type, param, norm text_pattern_ops);
CREATE INDEX search_string_owner ON search_string (res_type, id);

-- Every date, dateTime, instant, Period and Timing is the half-open range [lo, hi) it spans at
-- its own precision; open period ends are -infinity / infinity.
CREATE TABLE search_date (
    res_type text        NOT NULL,
    id       text        NOT NULL,
    param    text        NOT NULL,
    lo       timestamptz NOT NULL,
    hi       timestamptz NOT NULL
);
CREATE INDEX search_date_lookup ON search_date (res_type, param, lo, hi);
CREATE INDEX search_date_hi ON search_date (res_type, param, hi);
CREATE INDEX search_date_owner ON search_date (res_type, id);

CREATE TABLE search_number (
    res_type text    NOT NULL,
    id       text    NOT NULL,
    param    text    NOT NULL,
    value    numeric NOT NULL
);
CREATE INDEX search_number_lookup ON search_number (res_type, param, value);
CREATE INDEX search_number_owner ON search_number (res_type, id);

-- A Quantity is the range [value, value]; a Range is [low, high] with open ends NULL.
-- `code` is the coded unit (UCUM code or currency), `unit` the human-readable one.
CREATE TABLE search_quantity (
    res_type text    NOT NULL,
    id       text    NOT NULL,
    param    text    NOT NULL,
    system   text,
    code     text,
    unit     text,
    lo       numeric,
    hi       numeric
);
CREATE INDEX search_quantity_lookup ON search_quantity (res_type, param, code, lo);
CREATE INDEX search_quantity_owner ON search_quantity (res_type, id);

-- Literal references keep the target's type and id (relative or absolute); absolute URLs and
-- canonicals also keep `url` (canonicals split at `|` into url and version).
CREATE TABLE search_reference (
    res_type    text NOT NULL,
    id          text NOT NULL,
    param       text NOT NULL,
    target_type text,
    target_id   text,
    url         text,
    version     text
);
CREATE INDEX search_reference_lookup ON search_reference (res_type, param, target_id, target_type);
CREATE INDEX search_reference_target ON search_reference (target_type, target_id, res_type, param);
CREATE INDEX search_reference_url ON search_reference (res_type, param, url) WHERE url IS NOT NULL;
CREATE INDEX search_reference_owner ON search_reference (res_type, id);

CREATE TABLE search_uri (
    res_type text NOT NULL,
    id       text NOT NULL,
    param    text NOT NULL,
    uri      text NOT NULL
);
CREATE INDEX search_uri_lookup ON search_uri (res_type, param, uri);
CREATE INDEX search_uri_owner ON search_uri (res_type, id);
