-- $export's _typeFilter: per resource type, the search queries (ORed) its resources must match.
ALTER TABLE export_jobs ADD COLUMN type_filters jsonb NOT NULL DEFAULT '{}';
