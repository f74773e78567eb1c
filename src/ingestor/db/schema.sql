-- The whole current schema, in one place. `migrate` applies it to a database that has no ingestor tables
-- yet, in one transaction, and records every migration in migrations/ as applied; a database written by
-- v1.0.0 (or by an earlier version of this one) gets the migrations instead. Both must end identical:
-- tests/integration/test_schema.py builds a database from this file and one from v1.0.0's own DDL plus
-- every migration, and compares columns (order, types, defaults, nullability), constraints, indexes,
-- functions, storage options and grants. A new migration therefore always comes with its change here.
-- Why each table, column and index exists is told in the migration that introduced it.

-- Applied migrations (written by `migrate`).
CREATE TABLE ss_schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  checksum TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW());

-- One finding key per row: see 0004_finding_keys.sql.
CREATE FUNCTION ss_finding_key(report_type TEXT, ip INET, port INTEGER, raw_data JSONB, event_hash TEXT)
RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT COALESCE(
    CASE
      WHEN ip IS NULL THEN NULL
      WHEN report_type ~ '^event[46]_' AND report_type <> 'event4_honeypot_ddos_target' THEN abbrev(ip)
      ELSE abbrev(ip) || COALESCE('|' || port::text, '')
    END,
    CASE report_type
      WHEN 'compromised_account' THEN NULLIF(raw_data ->> 'email', '')
      WHEN 'ransomware_victim' THEN NULLIF(raw_data ->> 'entity_name', '')
      WHEN 'sandbox_dns' THEN NULLIF(concat_ws('|', raw_data ->> 'md5', raw_data ->> 'request'), '')
    END,
    event_hash)
$$;

-- Events: v1.0.0's columns in v1.0.0's order (asn widened to BIGINT), then event_time and file_id;
-- partitioned by report date (0007; db/partitions.py makes the partitions), so the primary key holds it.
CREATE TABLE ss_events (
  id BIGSERIAL NOT NULL,
  report_type TEXT NOT NULL,
  report_date DATE NOT NULL,
  ip INET,
  port INTEGER,
  asn BIGINT,
  geo TEXT,
  hostname TEXT,
  tag TEXT,
  severity TEXT,
  raw_data JSONB NOT NULL,
  event_hash TEXT NOT NULL,
  ingested_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  event_time TIMESTAMPTZ,
  file_id BIGINT,
  org_ids INTEGER[],
  CONSTRAINT ss_events_pkey PRIMARY KEY (id, report_date)
) PARTITION BY RANGE (report_date);
-- v1.0.0's unique key, by its v1.0.0 name, leading with the report date (0005).
CREATE UNIQUE INDEX ss_events_report_type_report_date_event_hash_key
  ON ss_events (report_date DESC NULLS LAST, report_type, event_hash);
CREATE INDEX idx_ss_events_ip ON ss_events (ip);
CREATE INDEX idx_ss_events_asn ON ss_events (asn);
CREATE INDEX idx_ss_events_hostname ON ss_events (hostname);

-- v1.0.0's per type-and-day counter.
CREATE TABLE ss_reports (
  report_id BIGSERIAL PRIMARY KEY,
  report_type TEXT NOT NULL,
  report_date DATE NOT NULL,
  event_count BIGINT NOT NULL DEFAULT 0,
  ingested_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  UNIQUE (report_type, report_date));

-- The audit log: v1.0.0's columns (reports_found .. events_skipped nullable, as there), then ours.
CREATE TABLE ss_ingestion_log (
  id BIGSERIAL PRIMARY KEY,
  run_started TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  run_finished TIMESTAMPTZ,
  status TEXT NOT NULL DEFAULT 'running',
  reports_found INTEGER DEFAULT 0,
  events_ingested BIGINT DEFAULT 0,
  events_skipped BIGINT DEFAULT 0,
  error_message TEXT,
  kind TEXT,
  window_start DATE,
  window_end DATE,
  files_new INTEGER NOT NULL DEFAULT 0,
  files_loaded INTEGER NOT NULL DEFAULT 0,
  files_failed INTEGER NOT NULL DEFAULT 0,
  rows_read BIGINT NOT NULL DEFAULT 0,
  rows_duplicate BIGINT NOT NULL DEFAULT 0,
  rows_rejected BIGINT NOT NULL DEFAULT 0,
  bytes_downloaded BIGINT NOT NULL DEFAULT 0,
  host TEXT,
  pid INTEGER);
CREATE INDEX idx_ss_ingestion_log_success ON ss_ingestion_log (run_finished) WHERE status = 'success';

-- Prunes and other maintenance, out of the ingestion log IRIS Data Explorer shows (0006).
CREATE TABLE ss_maintenance_log (
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
  pid INTEGER);
CREATE INDEX idx_ss_maintenance_log_started_at ON ss_maintenance_log (started_at);

-- The per-file ledger (0002).
CREATE TABLE ss_report_files (
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
  CONSTRAINT ss_report_files_status CHECK (status IN ('pending', 'loading', 'loaded', 'failed', 'interrupted')));
CREATE INDEX idx_ss_report_files_report_date ON ss_report_files (report_date);
CREATE INDEX idx_ss_report_files_run_id ON ss_report_files (run_id);
CREATE INDEX idx_ss_report_files_unfinished ON ss_report_files (status) WHERE status <> 'loaded';

-- A sample of rejected rows per file (0002).
CREATE TABLE ss_rejected_rows (
  id BIGSERIAL PRIMARY KEY,
  file_id BIGINT NOT NULL REFERENCES ss_report_files (id) ON DELETE CASCADE,
  line INTEGER,
  reason TEXT NOT NULL,
  detail TEXT,
  excerpt TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW());
CREATE INDEX idx_ss_rejected_rows_file_id ON ss_rejected_rows (file_id);

-- Findings (0003, keyed by ss_finding_key and pointing at events by their unique key since 0004).
CREATE TABLE ss_findings (
  report_type TEXT NOT NULL,
  finding_key TEXT NOT NULL,
  first_seen DATE NOT NULL,
  last_seen DATE NOT NULL,
  times_seen BIGINT NOT NULL,
  first_event_hash TEXT,
  last_event_hash TEXT,
  PRIMARY KEY (report_type, finding_key)
) WITH (fillfactor = 90);
CREATE INDEX idx_ss_findings_first_seen ON ss_findings (first_seen);

-- Constituents, their networks, the matcher's version and the notification delivery log (0010).
CREATE TABLE ss_orgs (
  id SERIAL PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  source TEXT NOT NULL DEFAULT 'manual',
  handle TEXT UNIQUE,
  country TEXT,
  language TEXT,
  tags TEXT[] NOT NULL DEFAULT '{}',
  notify_enabled BOOLEAN NOT NULL DEFAULT true,
  notify_interval_hours INTEGER NOT NULL DEFAULT 24,
  notify_types TEXT[],
  notify_min_severity TEXT,
  notify_mode TEXT NOT NULL DEFAULT 'new',
  notify_format TEXT NOT NULL DEFAULT 'html',
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  CONSTRAINT ss_orgs_source CHECK (source IN ('manual', 'ripe')),
  CONSTRAINT ss_orgs_notify_mode CHECK (notify_mode IN ('new', 'all')),
  CONSTRAINT ss_orgs_notify_format CHECK (notify_format IN ('html', 'text')),
  CONSTRAINT ss_orgs_notify_interval CHECK (notify_interval_hours BETWEEN 1 AND 8784));

CREATE TABLE ss_org_contacts (
  org_id INTEGER NOT NULL REFERENCES ss_orgs (id) ON DELETE CASCADE,
  email TEXT NOT NULL,
  PRIMARY KEY (org_id, email));

-- One row per network: exactly one of cidr, asn, domain is set.
CREATE TABLE ss_org_networks (
  id BIGSERIAL PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES ss_orgs (id) ON DELETE CASCADE,
  cidr CIDR,
  asn BIGINT,
  domain TEXT,
  CONSTRAINT ss_org_networks_one CHECK (num_nonnulls(cidr, asn, domain) = 1));
CREATE INDEX idx_ss_org_networks_org_id ON ss_org_networks (org_id);

-- The constituents' version: a new token on every change, so loaders rebuild their matcher only then.
CREATE TABLE ss_org_state (
  singleton BOOLEAN PRIMARY KEY DEFAULT true,
  token TEXT NOT NULL,
  changed_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  CONSTRAINT ss_org_state_singleton CHECK (singleton));
INSERT INTO ss_org_state (token) VALUES (gen_random_uuid()::text);

-- The delivery log of notification digests: one row per digest, written before and after sending.
CREATE TABLE ss_notifications (
  id BIGSERIAL PRIMARY KEY,
  org_id INTEGER REFERENCES ss_orgs (id) ON DELETE SET NULL,
  org_name TEXT NOT NULL,
  ticket TEXT NOT NULL UNIQUE,
  message_id TEXT NOT NULL UNIQUE,
  recipients TEXT[] NOT NULL,
  window_start DATE,
  window_end DATE,
  events INTEGER NOT NULL DEFAULT 0,
  findings INTEGER NOT NULL DEFAULT 0,
  suppressed INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'prepared',
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  message BYTEA,
  prepared_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  attempt_started_at TIMESTAMPTZ,
  sent_at TIMESTAMPTZ,
  CONSTRAINT ss_notifications_status CHECK (status IN ('prepared', 'sent', 'failed')));
CREATE INDEX idx_ss_notifications_org_id ON ss_notifications (org_id, prepared_at);
CREATE INDEX idx_ss_notifications_pending ON ss_notifications (status) WHERE status <> 'sent';

-- Which loaded files a digest covered for its organisation: a file's events are in one digest per org
-- (no digest when all of them were filtered out or suppressed).
CREATE TABLE ss_notification_files (
  org_id INTEGER NOT NULL,
  file_id BIGINT NOT NULL,
  notification_id BIGINT REFERENCES ss_notifications (id) ON DELETE CASCADE,
  PRIMARY KEY (org_id, file_id));
CREATE INDEX idx_ss_notification_files_notification_id ON ss_notification_files (notification_id);

-- When each finding was last sent to each organisation: the suppression window.
CREATE TABLE ss_notified_findings (
  org_id INTEGER NOT NULL,
  report_type TEXT NOT NULL,
  finding_key TEXT NOT NULL,
  last_sent_at TIMESTAMPTZ NOT NULL,
  notification_id BIGINT REFERENCES ss_notifications (id) ON DELETE SET NULL,
  PRIMARY KEY (org_id, report_type, finding_key));
