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

-- The finding lifecycle (0020): bit strings of days seen, the replay that gives them meaning, the rebuild.
-- The days of a finding as a bit string: bit 1 = first_seen, one bit per day up to the last of days.
CREATE FUNCTION ss_days_bits(first_seen DATE, days DATE[])
RETURNS VARBIT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT string_agg(CASE WHEN d.day IS NULL THEN '0' ELSE '1' END, '' ORDER BY g.n)::varbit
  FROM generate_series(0, (SELECT max(x) FROM unnest(days) AS x) - first_seen) AS g(n)
  LEFT JOIN (SELECT DISTINCT x - first_seen FROM unnest(days) AS x) AS d(day) ON d.day = g.n
$$;

-- seen_days with one more day seen (before, inside or after the days it covers).
CREATE FUNCTION ss_seen_day(seen VARBIT, first_seen DATE, day DATE)
RETURNS VARBIT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN day < first_seen THEN ('1' || repeat('0', first_seen - day - 1))::varbit || seen
    WHEN day - first_seen >= length(seen) THEN seen || (repeat('0', day - first_seen - length(seen)) || '1')::varbit
    ELSE set_bit(seen, day - first_seen, 1)
  END
$$;

-- The n-th of the sorted full_days after a day (NULL if there are fewer): the day a finding last seen
-- on "after" is resolved, when nothing shows it again before then.
CREATE FUNCTION ss_nth_full_day(full_days DATE[], after DATE, n INTEGER)
RETURNS DATE
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
  lo INTEGER := 1;
  hi INTEGER := COALESCE(array_length(full_days, 1), 0) + 1;
  mid INTEGER;
BEGIN
  WHILE lo < hi LOOP  -- the first full day after "after"
    mid := (lo + hi) / 2;
    IF full_days[mid] > after THEN hi := mid; ELSE lo := mid + 1; END IF;
  END LOOP;
  RETURN full_days[lo + n - 1];  -- NULL past the end
END
$$;

-- THE definition of the lifecycle: what the days a finding was seen (seen_days from first_seen) and its
-- type's full report days (sorted) mean when findings resolve after resolve_after full days of absence.
-- Returns its transitions dated from_day or later: 'new' (first_seen), 'resolved' (the resolve_after-th
-- full day of a gap with no sighting), 'reopened' (the first day seen after a resolution). Days with no
-- file, and delta days, are not in full_days: they never count as absence. Walks the runs of unseen days
-- from the last day seen before from_day, so a recent from_day costs a few steps however long the history.
CREATE FUNCTION ss_finding_replay(seen VARBIT, first_seen DATE, full_days DATE[], resolve_after INTEGER,
                                             from_day DATE)
RETURNS TABLE (kind TEXT, day DATE)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
  bits CONSTANT TEXT := seen::text;
  last_pos CONSTANT INTEGER := length(bits);
  pos INTEGER;
  next_pos INTEGER;
  resolved DATE;
BEGIN
  IF first_seen >= from_day THEN
    kind := 'new'; day := first_seen; RETURN NEXT;
    pos := 1;
  ELSE
    pos := length(rtrim(left(bits, from_day - first_seen), '0'));  -- the last day seen before from_day
  END IF;
  LOOP
    pos := regexp_instr(bits, '10', pos);  -- the last day seen before the next gap (0: no gap left)
    IF pos = 0 THEN
      pos := last_pos;
      next_pos := NULL;
    ELSE
      next_pos := regexp_instr(bits, '01', pos + 1) + 1;  -- the first day seen after the gap
    END IF;
    resolved := ss_nth_full_day(full_days, first_seen + (pos - 1), resolve_after);
    IF resolved IS NOT NULL AND (next_pos IS NULL OR resolved < first_seen + (next_pos - 1)) THEN
      IF resolved >= from_day THEN
        kind := 'resolved'; day := resolved; RETURN NEXT;
      END IF;
      IF next_pos IS NOT NULL THEN
        kind := 'reopened'; day := first_seen + (next_pos - 1); RETURN NEXT;
      END IF;
    END IF;
    EXIT WHEN next_pos IS NULL;
    pos := next_pos;
  END LOOP;
END
$$;

-- Recompute a report type's lifecycle and rollup from its recorded histories: which report days were deltas
-- (p_delta: the type comes in delta mode, so every day but Sunday is one), each finding's state, resolution
-- day and reopen count (ss_finding_replay), and its rows of ss_rollup_daily: rows and subjects from the
-- events still stored, kept as they were for the report dates a prune emptied, transitions from the
-- replay. Used by migration 0020 and `rollup rebuild`; the caller holds the type's lock (lifecycle.py).
CREATE FUNCTION ss_rebuild_lifecycle(p_type TEXT, p_resolve_after INTEGER, p_delta BOOLEAN)
RETURNS VOID
LANGUAGE plpgsql
AS $$
DECLARE
  full_days DATE[];
  oldest DATE := (SELECT min(report_date) FROM ss_events);
BEGIN
  UPDATE ss_report_days SET delta = (p_delta AND extract(isodow FROM report_date) <> 7)
  WHERE report_type = p_type AND delta <> (p_delta AND extract(isodow FROM report_date) <> 7);
  full_days := ARRAY(SELECT report_date FROM ss_report_days WHERE report_type = p_type AND NOT delta
                     ORDER BY report_date);

  UPDATE ss_findings f
  SET state = CASE WHEN r.resolved_at IS NULL THEN 'open' ELSE 'resolved' END, resolved_at = r.resolved_at,
      reopen_count = r.reopens
  FROM (SELECT finding_key, ss_nth_full_day(full_days, last_seen, p_resolve_after) AS resolved_at,
               (SELECT count(*) FROM ss_finding_replay(seen_days, first_seen, full_days, p_resolve_after, first_seen) x
                WHERE x.kind = 'reopened')::integer AS reopens
        FROM ss_findings WHERE report_type = p_type) r
  WHERE f.report_type = p_type AND f.finding_key = r.finding_key
    AND (f.state, f.resolved_at, f.reopen_count)
        IS DISTINCT FROM (CASE WHEN r.resolved_at IS NULL THEN 'open' ELSE 'resolved' END, r.resolved_at, r.reopens);

  CREATE TEMP TABLE IF NOT EXISTS ss_rebuild_rollup (LIKE ss_rollup_daily INCLUDING DEFAULTS) ON COMMIT DROP;
  TRUNCATE ss_rebuild_rollup;
  -- Rows and subjects of the report dates that still have events; org_id 0 counts every row, and each of
  -- its organisations (ss_events.org_ids, migration 0010) counts it again.
  INSERT INTO ss_rebuild_rollup (report_date, report_type, severity, asn, geo, org_id, rows, subjects)
  SELECT k.report_date, p_type, k.severity, k.asn, k.geo, o.org_id, count(*),
         count(*) FILTER (WHERE k.first_of_day)
  FROM (SELECT e.report_date, COALESCE(e.severity, '') AS severity, COALESCE(e.asn, 0) AS asn,
               COALESCE(e.geo, '') AS geo, ARRAY[0] || COALESCE(e.org_ids, '{}'::integer[]) AS orgs,
               row_number() OVER (PARTITION BY e.report_date,
                                  ss_finding_key(e.report_type, e.ip, e.port, e.raw_data, e.event_hash)
                                  ORDER BY e.id) = 1 AS first_of_day
        FROM ss_events e WHERE e.report_type = p_type) k
  CROSS JOIN LATERAL unnest(k.orgs) AS o(org_id)
  GROUP BY 1, 3, 4, 5, 6;
  -- Report dates a prune emptied keep their rows and subjects.
  INSERT INTO ss_rebuild_rollup (report_date, report_type, severity, asn, geo, org_id, rows, subjects)
  SELECT report_date, report_type, severity, asn, geo, org_id, rows, subjects
  FROM ss_rollup_daily
  WHERE report_type = p_type AND (oldest IS NULL OR report_date < oldest) AND (rows <> 0 OR subjects <> 0);
  -- Transitions, under the finding's own attributes.
  INSERT INTO ss_rebuild_rollup (report_date, report_type, severity, asn, geo, org_id, new_findings,
                                 resolved_findings, reopened_findings)
  SELECT x.day, p_type, f.severity, f.asn, f.geo, o.org_id, count(*) FILTER (WHERE x.kind = 'new'),
         count(*) FILTER (WHERE x.kind = 'resolved'), count(*) FILTER (WHERE x.kind = 'reopened')
  FROM ss_findings f
  CROSS JOIN LATERAL ss_finding_replay(f.seen_days, f.first_seen, full_days, p_resolve_after, f.first_seen) x
  CROSS JOIN LATERAL unnest(ARRAY[0] || f.org_ids) AS o(org_id)
  WHERE f.report_type = p_type
  GROUP BY 1, 3, 4, 5, 6;

  DELETE FROM ss_rollup_daily WHERE report_type = p_type;
  INSERT INTO ss_rollup_daily (report_date, report_type, severity, asn, geo, org_id, rows, subjects, new_findings,
                               resolved_findings, reopened_findings)
  SELECT report_date, report_type, severity, asn, geo, org_id, sum(rows), sum(subjects), sum(new_findings),
         sum(resolved_findings), sum(reopened_findings)
  FROM ss_rebuild_rollup
  GROUP BY 1, 2, 3, 4, 5, 6
  ORDER BY 1, 2, 3, 4, 5, 6;
END
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
  seen_days VARBIT NOT NULL,
  state TEXT NOT NULL DEFAULT 'open',
  resolved_at DATE,
  reopen_count INTEGER NOT NULL DEFAULT 0,
  severity TEXT NOT NULL DEFAULT '',
  asn BIGINT NOT NULL DEFAULT 0,
  geo TEXT NOT NULL DEFAULT '',
  org_ids INTEGER[] NOT NULL DEFAULT '{}',
  PRIMARY KEY (report_type, finding_key),
  CONSTRAINT ss_findings_state CHECK (state IN ('open', 'resolved'))
) WITH (fillfactor = 90);
CREATE INDEX idx_ss_findings_first_seen ON ss_findings (first_seen);
CREATE INDEX idx_ss_findings_open ON ss_findings (report_type, last_seen) WHERE state = 'open';

-- The report days each type was delivered, full or delta (0020).
CREATE TABLE ss_report_days (
  report_type TEXT NOT NULL,
  report_date DATE NOT NULL,
  delta BOOLEAN NOT NULL,
  first_loaded_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  last_loaded_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  PRIMARY KEY (report_type, report_date));

-- The daily rollup (0020): report date x type x severity x ASN x country x organisation.
CREATE TABLE ss_rollup_daily (
  report_date DATE NOT NULL,
  report_type TEXT NOT NULL,
  severity TEXT NOT NULL,
  asn BIGINT NOT NULL,
  geo TEXT NOT NULL,
  org_id INTEGER NOT NULL,
  rows BIGINT NOT NULL DEFAULT 0,
  subjects BIGINT NOT NULL DEFAULT 0,
  new_findings BIGINT NOT NULL DEFAULT 0,
  resolved_findings BIGINT NOT NULL DEFAULT 0,
  reopened_findings BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (report_date, report_type, severity, asn, geo, org_id));

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
