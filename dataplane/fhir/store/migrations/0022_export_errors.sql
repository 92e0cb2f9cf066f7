-- $export's errors known at kick-off (parameters ignored under Prefer: handling=lenient, and
-- `patient` references the export leaves out): OperationOutcome issues for the manifest's
-- error file, kept with the job so that a restarted server still reports them.
ALTER TABLE export_jobs ADD COLUMN errors jsonb NOT NULL DEFAULT '[]';
