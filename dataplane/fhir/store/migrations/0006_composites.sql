-- Composite parameters (`component-code-value-quantity`, `context-type-value`, ...): one row per
-- component value of each repetition the parameter's expression selects. `grp` numbers the
-- repetition and `comp` the component, so a search can demand that all components match within
-- one repetition: code 8480-6 with a value over 140 in the same Observation.component. The
-- value columns are those of the typed tables (a date's are `dlo`/`dhi`), whichever the
-- component's type fills. Rows written before this migration appear with the next $reindex.
CREATE TABLE search_composite (
    res_type    text     NOT NULL,
    id          text     NOT NULL,
    param       text     NOT NULL,
    grp         integer  NOT NULL,
    comp        smallint NOT NULL,
    system      text,
    code        text,
    display     text,
    norm        text,
    exact       text,
    dlo         timestamptz,
    dhi         timestamptz,
    value       numeric,
    unit        text,
    lo          numeric,
    hi          numeric,
    canon_dim   text,
    canon_lo    numeric,
    canon_hi    numeric,
    target_type text,
    target_id   text,
    url         text,
    version     text,
    uri         text
);
-- The first component is nearly always a code; the lookup serves it, the owner index the rest.
CREATE INDEX search_composite_lookup ON search_composite (res_type, param, comp, code);
CREATE INDEX search_composite_owner ON search_composite (res_type, id);
