-- ss_ingestion_log is the log of ingestion runs, as v1.0.0 and IRIS Data Explorer mean it: IRIS's "Last
-- Ingestion" card shows its newest row. A prune recorded there (after every service cycle with
-- RETENTION_DAYS set) showed a green 'success' over a failed ingestion, and its deleted events as
-- "Skipped". Prunes (and any later maintenance) get a log of their own; the rows written so far move.
CREATE TABLE IF NOT EXISTS ss_maintenance_log (
  id BIGSERIAL PRIMARY KEY,
  kind TEXT NOT NULL,
  started_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  finished_at TIMESTAMPTZ,
  status TEXT NOT NULL DEFAULT 'running',
  cutoff DATE,
  events_deleted BIGINT NOT NULL DEFAULT 0,
  reports_deleted BIGINT NOT NULL DEFAULT 0,
  files_deleted BIGINT NOT NULL DEFAULT 0,
  runs_deleted BIGINT NOT NULL DEFAULT 0,
  first_date DATE,
  last_date DATE,
  seconds DOUBLE PRECISION,
  error TEXT,
  host TEXT,
  pid INTEGER
);
CREATE INDEX IF NOT EXISTS idx_ss_maintenance_log_started_at ON ss_maintenance_log (started_at);

INSERT INTO ss_maintenance_log (kind, started_at, finished_at, status, events_deleted, first_date, last_date, error,
                                host, pid)
SELECT 'prune', run_started, run_finished, status, COALESCE(events_skipped, 0), window_start, window_end,
       error_message, host, pid
FROM ss_ingestion_log
WHERE kind = 'prune'
ORDER BY id;
DELETE FROM ss_ingestion_log WHERE kind = 'prune';

-- The one rule for "the last success" (health, the scheduler's first-start check, status): the newest
-- successful ingestion cycle. This index finds it without reading the whole log.
CREATE INDEX IF NOT EXISTS idx_ss_ingestion_log_success ON ss_ingestion_log (run_finished) WHERE status = 'success';
