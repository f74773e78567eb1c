-- Version 2: 4-byte ASNs, typed event time, the per-file ledger, rejected rows, a truthful audit log,
-- and an index set chosen by the queries users run (see the README, "Indexes").

-- Indexes that cost writes and serve no query: the GIN index on raw_data (IRIS Data Explorer searches
-- raw_data::TEXT ILIKE, which GIN jsonb_ops cannot serve; it alone costs 2.6x in COPY throughput),
-- report_type (the unique key starts with it), and geo/tag/severity (searched with ILIKE '%..%',
-- which a btree cannot serve, and too few distinct values to filter on).
DROP INDEX IF EXISTS idx_ss_events_raw_data;
DROP INDEX IF EXISTS idx_ss_events_report_type;
DROP INDEX IF EXISTS idx_ss_events_geo;
DROP INDEX IF EXISTS idx_ss_events_tag;
DROP INDEX IF EXISTS idx_ss_events_severity;
-- IRIS Data Explorer correlates cases by hostname = ANY(...): without an index that scans the table.
CREATE INDEX IF NOT EXISTS idx_ss_events_hostname ON ss_events (hostname);

-- 4-byte ASNs (up to 4294967295) overflow INTEGER. Rewrites the table once on a v1.0.0
-- database (after the index drops above, so that the GIN index is not rebuilt for nothing).
ALTER TABLE ss_events ALTER COLUMN asn TYPE BIGINT;
ALTER TABLE ss_events ADD COLUMN IF NOT EXISTS event_time TIMESTAMPTZ;
ALTER TABLE ss_events ADD COLUMN IF NOT EXISTS file_id BIGINT;

ALTER TABLE ss_reports ALTER COLUMN event_count TYPE BIGINT;

ALTER TABLE ss_ingestion_log
  ALTER COLUMN events_ingested TYPE BIGINT,
  ALTER COLUMN events_skipped TYPE BIGINT,
  ADD COLUMN IF NOT EXISTS kind TEXT,
  ADD COLUMN IF NOT EXISTS window_start DATE,
  ADD COLUMN IF NOT EXISTS window_end DATE,
  ADD COLUMN IF NOT EXISTS files_new INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS files_loaded INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS files_failed INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS rows_read BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS rows_duplicate BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS rows_rejected BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS bytes_downloaded BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS host TEXT,
  ADD COLUMN IF NOT EXISTS pid INTEGER;

-- The per-file ledger: each listed file once, with what became of it. The download id is a bearer
-- capability and is not stored: source_key holds its SHA-256 ('api:<hex>'), or the content's
-- SHA-256 for imported files ('file:<hex>').
CREATE TABLE IF NOT EXISTS ss_report_files (
  id BIGSERIAL PRIMARY KEY,
  source TEXT NOT NULL,
  source_key TEXT NOT NULL UNIQUE,
  report_type TEXT NOT NULL,
  report_date DATE NOT NULL,
  file_name TEXT,
  subscription TEXT,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  size_bytes BIGINT,
  sha256 TEXT,
  rows_read BIGINT NOT NULL DEFAULT 0,
  rows_inserted BIGINT NOT NULL DEFAULT 0,
  rows_duplicate BIGINT NOT NULL DEFAULT 0,
  rows_rejected BIGINT NOT NULL DEFAULT 0,
  anomalies JSONB NOT NULL DEFAULT '{}',
  rejects JSONB NOT NULL DEFAULT '{}',
  known_type BOOLEAN,
  columns_unknown TEXT[],
  columns_missing TEXT[],
  error TEXT,
  run_id BIGINT REFERENCES ss_ingestion_log (id) ON DELETE SET NULL,
  first_listed_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  started_at TIMESTAMPTZ,
  finished_at TIMESTAMPTZ,
  download_seconds DOUBLE PRECISION,
  load_seconds DOUBLE PRECISION,
  CONSTRAINT ss_report_files_status CHECK (status IN ('pending', 'loading', 'loaded', 'failed', 'interrupted'))
);
CREATE INDEX IF NOT EXISTS idx_ss_report_files_report_date ON ss_report_files (report_date);
CREATE INDEX IF NOT EXISTS idx_ss_report_files_run_id ON ss_report_files (run_id);
CREATE INDEX IF NOT EXISTS idx_ss_report_files_unfinished ON ss_report_files (status) WHERE status <> 'loaded';

-- A sample of rejected rows per file (all of them are counted in ss_report_files.rejects).
CREATE TABLE IF NOT EXISTS ss_rejected_rows (
  id BIGSERIAL PRIMARY KEY,
  file_id BIGINT NOT NULL REFERENCES ss_report_files (id) ON DELETE CASCADE,
  line INTEGER,
  reason TEXT NOT NULL,
  detail TEXT,
  excerpt TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_ss_rejected_rows_file_id ON ss_rejected_rows (file_id);
