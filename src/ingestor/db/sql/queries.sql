-- Named queries. Each block: "-- name: <name>", comment lines describing it, then one statement.

-- Every statement of the load path is written so that PostgreSQL can serve it only through the index meant
-- for it, whatever its statistics say: the loader runs right after other files of the same report type and
-- date were added, before autovacuum has analysed them, and after a crash recovery has reset the
-- statistics. PostgreSQL 15 then planned the former duplicate probe as a scan of the whole report day per
-- row (215 rows/s). tests/integration/test_load_plans.py checks each plan on a table never analysed.

-- name: create_key_stage
-- Per-file staging of the identities of one batch: position, event_hash, v1.0.0's ISO-8859-1 hash (rows
-- with non-ASCII text only), and the inputs of the finding key (subject address and port; the raw row
-- only for rows without an address, whose key is a natural key), and the row's organisations (org_ids: what
-- later statements of the file's transaction join on to know them, e.g. rollups). Created inside the file's transaction,
-- so each TRUNCATE is done in place and nothing of it outlives the transaction.
CREATE TEMP TABLE ss_stage_keys (pos INTEGER NOT NULL, event_hash TEXT NOT NULL, legacy_hash TEXT, ip INET,
                                 port INTEGER, raw_data JSONB, org_ids INTEGER[])
ON COMMIT DROP;

-- name: create_findings_stage
-- The file's inserted rows: finding key, event_hash, order in the file, and the severity, ASN, country and
-- organisations the rollup counts them under; folded into ss_findings and ss_rollup_daily once at the end.
CREATE TEMP TABLE ss_stage_findings (finding_key TEXT NOT NULL, event_hash TEXT NOT NULL, ord BIGINT NOT NULL,
                                     severity TEXT NOT NULL, asn BIGINT NOT NULL, geo TEXT NOT NULL,
                                     org_ids INTEGER[] NOT NULL)
ON COMMIT DROP;

-- name: truncate_key_stage
TRUNCATE ss_stage_keys;

-- name: copy_key_stage
COPY ss_stage_keys (pos, event_hash, legacy_hash, ip, port, raw_data, org_ids) FROM STDIN;

-- name: existing_keys
-- Positions (in the batch) of rows already stored, in earlier files or in earlier batches of this file
-- (the transaction sees them). The whole unique key is an equality and the lookup is LATERAL: one probe
-- of ss_events_report_type_report_date_event_hash_key per staged row, by construction (a join could be
-- planned as a hash of the whole report day; an ANY(ARRAY[...]) of two hashes is not an index condition
-- on PostgreSQL 15 and became a filter over the day).
SELECT s.pos
FROM ss_stage_keys s
CROSS JOIN LATERAL (
  SELECT 1 FROM ss_events e
  WHERE e.report_type = %(report_type)s AND e.report_date = %(report_date)s AND e.event_hash = s.event_hash
  LIMIT 1) AS stored;

-- name: existing_legacy_keys
-- Positions of rows with non-ASCII text that v1.0.0 already stored under its ISO-8859-1 hash: only rows
-- v1.0.0 wrote can carry that hash, and those have no file_id (every row we store has one). A separate
-- probe, run only for batches that have such rows, with the same index condition as existing_keys.
SELECT s.pos
FROM ss_stage_keys s
CROSS JOIN LATERAL (
  SELECT 1 FROM ss_events e
  WHERE e.report_type = %(report_type)s AND e.report_date = %(report_date)s AND e.event_hash = s.legacy_hash
    AND e.file_id IS NULL
  LIMIT 1) AS stored
WHERE s.legacy_hash IS NOT NULL;

-- name: copy_events
-- New rows go straight into ss_events: the probes above have removed the rows already stored, and the
-- ingestion lock keeps other ingestors out, so the unique key is the last line of defence, not a filter.
-- org_ids was computed by the parse worker (constituents/matcher.py): matching costs no write of its own.
COPY ss_events (report_type, report_date, file_id, ip, port, asn, geo, hostname, tag, severity, event_time,
                raw_data, event_hash, org_ids)
FROM STDIN;

-- name: stage_findings
-- The finding keys of the batch's inserted rows (every staged position but the stored ones), computed
-- from the staged values by ss_finding_key(), the one definition of a finding (migration 0004), with the
-- typed columns of each row just written, read back through the unique key (one probe per row, of pages
-- the COPY has just written), and the organisations the parse worker matched (staged with the key; NULL =
-- no owner).
INSERT INTO ss_stage_findings (finding_key, event_hash, ord, severity, asn, geo, org_ids)
SELECT ss_finding_key(%(report_type)s, s.ip, s.port, s.raw_data, s.event_hash), s.event_hash,
       %(batch_base)s::bigint + s.pos, e.severity, e.asn, e.geo, COALESCE(s.org_ids, '{}'::integer[])
FROM ss_stage_keys s
CROSS JOIN LATERAL (
  SELECT COALESCE(e.severity, '') AS severity, COALESCE(e.asn, 0) AS asn, COALESCE(e.geo, '') AS geo
  FROM ss_events e
  WHERE e.report_type = %(report_type)s AND e.report_date = %(report_date)s AND e.event_hash = s.event_hash
  LIMIT 1) AS e
WHERE s.pos <> ALL (%(stored)s::integer[]);

-- The finding lifecycle and the rollup (lifecycle.py; migration 0020 defines ss_finding_replay()). Every
-- statement below runs after lock_report_type, so one transaction at a time applies a report type.

-- name: lock_report_type
-- The report type's lifecycle lock, until the end of the file's transaction.
SELECT pg_advisory_xact_lock(%(lock_class)s::integer, hashtext(%(report_type)s));

-- name: report_day_before
-- The newest report day of the type, and whether this file's day was delivered already as a delta (NULL:
-- not delivered yet). Primary key probes.
SELECT (SELECT max(report_date) FROM ss_report_days WHERE report_type = %(report_type)s),
       (SELECT delta FROM ss_report_days WHERE report_type = %(report_type)s AND report_date = %(report_date)s);

-- name: full_report_days
-- The type's full report days, in order (a late file replays against them).
SELECT ARRAY(SELECT report_date FROM ss_report_days WHERE report_type = %(report_type)s AND NOT delta
             ORDER BY report_date);

-- name: record_report_day
-- The type was delivered on this day; a day is a delta day only while every file of it was one.
INSERT INTO ss_report_days (report_type, report_date, delta)
VALUES (%(report_type)s, %(report_date)s, %(delta)s)
ON CONFLICT (report_type, report_date)
DO UPDATE SET delta = ss_report_days.delta AND EXCLUDED.delta, last_loaded_at = NOW();

-- name: create_seen_stage
-- One row per finding of the file: how many rows, the smallest event_hash (ss_findings points at it), and
-- the typed columns of its first row in the file.
CREATE TEMP TABLE ss_stage_seen (finding_key TEXT PRIMARY KEY, times BIGINT NOT NULL, event_hash TEXT NOT NULL,
                                 severity TEXT NOT NULL, asn BIGINT NOT NULL, geo TEXT NOT NULL,
                                 org_ids INTEGER[] NOT NULL)
ON COMMIT DROP;

-- name: create_changes_stage
-- What the file changes in the rollup: +1/-1 per finding and kind (subject, new, resolved, reopened) and day.
CREATE TEMP TABLE ss_stage_changes (finding_key TEXT NOT NULL, kind TEXT NOT NULL, day DATE NOT NULL,
                                    sign INTEGER NOT NULL, severity TEXT NOT NULL, asn BIGINT NOT NULL,
                                    geo TEXT NOT NULL, org_ids INTEGER[] NOT NULL)
ON COMMIT DROP;

-- name: create_affected_stage
-- A late file: the findings whose history around its day changes, as they were before it.
CREATE TEMP TABLE ss_stage_affected (finding_key TEXT PRIMARY KEY, old_first DATE, old_seen VARBIT,
                                     severity TEXT, asn BIGINT, geo TEXT, org_ids INTEGER[], reopen_count INTEGER)
ON COMMIT DROP;

-- name: stage_seen
INSERT INTO ss_stage_seen (finding_key, times, event_hash, severity, asn, geo, org_ids)
SELECT DISTINCT ON (finding_key) finding_key, count(*) OVER w, min(event_hash) OVER w, severity, asn, geo, org_ids
FROM ss_stage_findings
WINDOW w AS (PARTITION BY finding_key)
ORDER BY finding_key, ord;

-- name: classify_in_order
-- A file of the type's newest day: what it changes, read before update_findings changes it. A finding not yet
-- seen that day is a subject of the day (under the file's first row of it); one never seen is new; one
-- resolved before that day is reopened; one resolved ON that day (by an earlier file of the day: a full
-- day it seemed absent from) was not absent after all: that resolution is withdrawn. Transitions count
-- under the finding's own attributes. One primary-key probe per finding.
INSERT INTO ss_stage_changes (finding_key, kind, day, sign, severity, asn, geo, org_ids)
SELECT s.finding_key, c.kind, %(report_date)s, c.sign, c.severity, c.asn, c.geo, c.org_ids
FROM ss_stage_seen s
LEFT JOIN LATERAL (
  SELECT f.last_seen, f.state, f.resolved_at, f.severity, f.asn, f.geo, f.org_ids
  FROM ss_findings f
  WHERE f.report_type = %(report_type)s AND f.finding_key = s.finding_key
  LIMIT 1) AS f ON true
CROSS JOIN LATERAL (VALUES
  ('subject', 1, s.severity, s.asn, s.geo, s.org_ids, f.last_seen IS NULL OR f.last_seen < %(report_date)s),
  ('new', 1, s.severity, s.asn, s.geo, s.org_ids, f.last_seen IS NULL),
  ('reopened', 1, f.severity, f.asn, f.geo, f.org_ids,
   f.last_seen < %(report_date)s AND f.state = 'resolved' AND f.resolved_at < %(report_date)s),
  ('resolved', -1, f.severity, f.asn, f.geo, f.org_ids,
   f.last_seen < %(report_date)s AND f.state = 'resolved' AND f.resolved_at = %(report_date)s)
) AS c(kind, sign, severity, asn, geo, org_ids, applies)
WHERE c.applies;

-- name: update_findings
-- Fold the file's findings into ss_findings: first/last seen (and the event that first/last reported
-- each: the smallest event_hash of that day, as migration 0004 chose it, whatever order its files came in),
-- times seen, the day in seen_days, and the attributes of the first row when the file's day is the
-- earliest. In order, a finding in the file is open (reopened if it was resolved); a late file's
-- states are set by late_update_states. Rows are locked in key order.
INSERT INTO ss_findings AS f (report_type, finding_key, first_seen, last_seen, times_seen, first_event_hash,
                              last_event_hash, seen_days, state, resolved_at, reopen_count, severity, asn, geo,
                              org_ids)
SELECT %(report_type)s, finding_key, %(report_date)s, %(report_date)s, times, event_hash, event_hash, B'1', 'open',
       NULL, 0, severity, asn, geo, org_ids
FROM ss_stage_seen
ORDER BY finding_key
ON CONFLICT (report_type, finding_key) DO UPDATE
SET first_seen = LEAST(f.first_seen, EXCLUDED.first_seen),
    first_event_hash = CASE WHEN EXCLUDED.first_seen < f.first_seen THEN EXCLUDED.first_event_hash
                            WHEN EXCLUDED.first_seen = f.first_seen
                            THEN LEAST(f.first_event_hash, EXCLUDED.first_event_hash)
                            ELSE f.first_event_hash END,
    last_seen = GREATEST(f.last_seen, EXCLUDED.last_seen),
    last_event_hash = CASE WHEN EXCLUDED.last_seen > f.last_seen THEN EXCLUDED.last_event_hash
                           WHEN EXCLUDED.last_seen = f.last_seen THEN LEAST(f.last_event_hash, EXCLUDED.last_event_hash)
                           ELSE f.last_event_hash END,
    times_seen = f.times_seen + EXCLUDED.times_seen,
    seen_days = ss_seen_day(f.seen_days, f.first_seen, EXCLUDED.first_seen),
    severity = CASE WHEN EXCLUDED.first_seen < f.first_seen THEN EXCLUDED.severity ELSE f.severity END,
    asn = CASE WHEN EXCLUDED.first_seen < f.first_seen THEN EXCLUDED.asn ELSE f.asn END,
    geo = CASE WHEN EXCLUDED.first_seen < f.first_seen THEN EXCLUDED.geo ELSE f.geo END,
    org_ids = CASE WHEN EXCLUDED.first_seen < f.first_seen THEN EXCLUDED.org_ids ELSE f.org_ids END,
    state = CASE WHEN %(in_order)s THEN 'open' ELSE f.state END,
    resolved_at = CASE WHEN %(in_order)s THEN NULL ELSE f.resolved_at END,
    reopen_count = f.reopen_count
                   + CASE WHEN %(in_order)s AND f.last_seen < EXCLUDED.last_seen AND f.state = 'resolved'
                               AND f.resolved_at < EXCLUDED.last_seen THEN 1 ELSE 0 END;

-- name: resolve_in_order
-- A new full day, the newest of its type: open findings last seen before the type's resolve_after-th newest
-- full day have now been absent from resolve_after full days, this one the last (partial index
-- idx_ss_findings_open).
WITH nth AS (
  SELECT report_date FROM ss_report_days
  WHERE report_type = %(report_type)s AND NOT delta
  ORDER BY report_date DESC
  OFFSET (%(resolve_after)s - 1) LIMIT 1),
resolved AS (
  UPDATE ss_findings f SET state = 'resolved', resolved_at = %(report_date)s
  FROM nth
  WHERE f.report_type = %(report_type)s AND f.state = 'open' AND f.last_seen < nth.report_date
  RETURNING f.finding_key, f.severity, f.asn, f.geo, f.org_ids)
INSERT INTO ss_stage_changes (finding_key, kind, day, sign, severity, asn, geo, org_ids)
SELECT finding_key, 'resolved', %(report_date)s, 1, severity, asn, geo, org_ids FROM resolved;

-- name: stage_affected
-- A late file: its findings, and, when its day is a new full day, every finding of the type whose history
-- has that day in a gap (seen before it, and later or not resolved before it).
INSERT INTO ss_stage_affected (finding_key, old_first, old_seen, severity, asn, geo, org_ids, reopen_count)
SELECT s.finding_key, f.first_seen, f.seen_days, f.severity, f.asn, f.geo, f.org_ids, f.reopen_count
FROM ss_stage_seen s
LEFT JOIN LATERAL (
  SELECT f.first_seen, f.seen_days, f.severity, f.asn, f.geo, f.org_ids, f.reopen_count
  FROM ss_findings f
  WHERE f.report_type = %(report_type)s AND f.finding_key = s.finding_key
  LIMIT 1) AS f ON true
UNION ALL
SELECT f.finding_key, f.first_seen, f.seen_days, f.severity, f.asn, f.geo, f.org_ids, f.reopen_count
FROM ss_findings f
WHERE %(newly_full)s AND f.report_type = %(report_type)s AND f.first_seen < %(report_date)s
  AND (f.last_seen > %(report_date)s OR f.state = 'open' OR f.resolved_at >= %(report_date)s)
  AND NOT EXISTS (SELECT 1 FROM ss_stage_seen s WHERE s.finding_key = f.finding_key);

-- name: late_old_transitions
-- A late file: the affected findings' transitions from its day on, as they were, taken back.
INSERT INTO ss_stage_changes (finding_key, kind, day, sign, severity, asn, geo, org_ids)
SELECT a.finding_key, x.kind, x.day, -1, a.severity, a.asn, a.geo, a.org_ids
FROM ss_stage_affected a
CROSS JOIN LATERAL ss_finding_replay(a.old_seen, a.old_first, %(full_before)s::date[], %(resolve_after)s,
                                     %(report_date)s) AS x
WHERE a.old_seen IS NOT NULL;

-- name: late_subjects
-- A late file: its findings not seen on its day yet are subjects of that day.
INSERT INTO ss_stage_changes (finding_key, kind, day, sign, severity, asn, geo, org_ids)
SELECT s.finding_key, 'subject', %(report_date)s, 1, s.severity, s.asn, s.geo, s.org_ids
FROM ss_stage_seen s
JOIN ss_stage_affected a USING (finding_key)
WHERE a.old_seen IS NULL
   OR CASE WHEN %(report_date)s < a.old_first OR %(report_date)s - a.old_first >= length(a.old_seen) THEN true
           ELSE get_bit(a.old_seen, %(report_date)s - a.old_first) = 0 END;

-- name: late_new_transitions
-- A late file: the affected findings' transitions from its day on, replayed with it.
INSERT INTO ss_stage_changes (finding_key, kind, day, sign, severity, asn, geo, org_ids)
SELECT a.finding_key, x.kind, x.day, 1, f.severity, f.asn, f.geo, f.org_ids
FROM ss_stage_affected a
JOIN LATERAL (
  SELECT f.first_seen, f.seen_days, f.severity, f.asn, f.geo, f.org_ids
  FROM ss_findings f
  WHERE f.report_type = %(report_type)s AND f.finding_key = a.finding_key
  LIMIT 1) AS f ON true
CROSS JOIN LATERAL ss_finding_replay(f.seen_days, f.first_seen, %(full_after)s::date[], %(resolve_after)s,
                                     %(report_date)s) AS x;

-- name: late_update_states
-- A late file: the affected findings' state and resolution day from their last day seen, their reopen
-- count changed by what the replay changed.
UPDATE ss_findings f
SET resolved_at = ss_nth_full_day(%(full_after)s::date[], f.last_seen, %(resolve_after)s),
    state = CASE WHEN ss_nth_full_day(%(full_after)s::date[], f.last_seen, %(resolve_after)s) IS NULL THEN 'open'
                 ELSE 'resolved' END,
    reopen_count = COALESCE(a.reopen_count, 0) + COALESCE(c.reopens, 0)
FROM ss_stage_affected a
LEFT JOIN (SELECT finding_key, sum(sign) FILTER (WHERE kind = 'reopened')::integer AS reopens
           FROM ss_stage_changes GROUP BY finding_key) AS c USING (finding_key)
WHERE f.report_type = %(report_type)s AND f.finding_key = a.finding_key;

-- name: update_rollup
-- The file's rows (under their own columns) and what it changed (ss_stage_changes) into ss_rollup_daily,
-- once per cell and in key order. org_id 0 counts everything; each organisation of a row counts it again.
INSERT INTO ss_rollup_daily AS r (report_date, report_type, severity, asn, geo, org_id, rows, subjects,
                                  new_findings, resolved_findings, reopened_findings)
SELECT c.day, %(report_type)s, c.severity, c.asn, c.geo, o.org_id, sum(c.rows), sum(c.subjects), sum(c.new),
       sum(c.resolved), sum(c.reopened)
FROM (SELECT %(report_date)s::date AS day, severity, asn, geo, org_ids, 1 AS rows, 0 AS subjects, 0 AS new,
             0 AS resolved, 0 AS reopened
      FROM ss_stage_findings
      UNION ALL
      SELECT day, severity, asn, geo, org_ids, 0, sign * (kind = 'subject')::integer, sign * (kind = 'new')::integer,
             sign * (kind = 'resolved')::integer, sign * (kind = 'reopened')::integer
      FROM ss_stage_changes) AS c
CROSS JOIN LATERAL unnest(ARRAY[0] || c.org_ids) AS o(org_id)
GROUP BY c.day, c.severity, c.asn, c.geo, o.org_id
HAVING sum(c.rows) <> 0 OR sum(c.subjects) <> 0 OR sum(c.new) <> 0 OR sum(c.resolved) <> 0 OR sum(c.reopened) <> 0
ORDER BY c.day, c.severity, c.asn, c.geo, o.org_id
ON CONFLICT (report_date, report_type, severity, asn, geo, org_id) DO UPDATE
SET rows = r.rows + EXCLUDED.rows, subjects = r.subjects + EXCLUDED.subjects,
    new_findings = r.new_findings + EXCLUDED.new_findings,
    resolved_findings = r.resolved_findings + EXCLUDED.resolved_findings,
    reopened_findings = r.reopened_findings + EXCLUDED.reopened_findings;

-- name: drop_empty_rollup
-- Cells a withdrawn transition left at zero everywhere (range of the primary key from the file's day).
DELETE FROM ss_rollup_daily
WHERE report_date >= %(report_date)s AND report_type = %(report_type)s AND rows = 0 AND subjects = 0
  AND new_findings = 0 AND resolved_findings = 0 AND reopened_findings = 0;

-- name: lifecycle_types
-- Every report type with a report day or a finding.
SELECT report_type FROM ss_report_days UNION SELECT report_type FROM ss_findings ORDER BY 1;

-- name: rebuild_lifecycle
SELECT ss_rebuild_lifecycle(%(report_type)s, %(resolve_after)s, %(delta)s);

-- name: add_report_count
-- v1.0.0's per type-and-date counter of inserted events.
INSERT INTO ss_reports (report_type, report_date, event_count)
VALUES (%(report_type)s, %(report_date)s, %(inserted)s)
ON CONFLICT (report_type, report_date)
DO UPDATE SET event_count = ss_reports.event_count + EXCLUDED.event_count, ingested_at = NOW();

-- name: insert_rejected_row
INSERT INTO ss_rejected_rows (file_id, line, reason, detail, excerpt)
VALUES (%(file_id)s, %(line)s, %(reason)s, %(detail)s, %(excerpt)s);

-- name: file_states
-- Ledger state of listed files: one probe of the source_key unique index per listed key, so that a ledger
-- of years of files is never scanned whatever its statistics (LIMIT 1 keeps the LATERAL subquery from
-- being flattened into a join, which PostgreSQL may plan as a hash of the whole ledger).
SELECT f.source_key, f.status, f.attempts
FROM unnest(%(keys)s::text[]) AS k(source_key)
CROSS JOIN LATERAL (
  SELECT source_key, status, attempts FROM ss_report_files WHERE source_key = k.source_key LIMIT 1) AS f;

-- name: claim_file
-- Record that a file is being loaded (committed at once, so a crash leaves a visible trace).
INSERT INTO ss_report_files (source, source_key, report_type, report_date, file_name, subscription,
                             status, attempts, run_id, started_at)
VALUES (%(source)s, %(source_key)s, %(report_type)s, %(report_date)s, %(file_name)s, %(subscription)s,
        'loading', 1, %(run_id)s, NOW())
ON CONFLICT (source_key) DO UPDATE
SET status = 'loading', attempts = ss_report_files.attempts + 1, run_id = EXCLUDED.run_id,
    started_at = NOW(), finished_at = NULL, error = NULL,
    report_type = EXCLUDED.report_type, report_date = EXCLUDED.report_date,
    file_name = EXCLUDED.file_name, subscription = EXCLUDED.subscription
RETURNING id, attempts;

-- name: file_loaded
UPDATE ss_report_files
SET status = 'loaded', finished_at = NOW(), error = NULL,
    size_bytes = %(size_bytes)s, sha256 = %(sha256)s,
    rows_read = %(rows_read)s, rows_inserted = %(rows_inserted)s, rows_duplicate = %(rows_duplicate)s,
    rows_rejected = %(rows_rejected)s, anomalies = %(anomalies)s, rejects = %(rejects)s,
    known_type = %(known_type)s, columns_unknown = %(columns_unknown)s, columns_missing = %(columns_missing)s,
    download_seconds = %(download_seconds)s, load_seconds = %(load_seconds)s
WHERE id = %(id)s;

-- name: file_failed
UPDATE ss_report_files
SET status = %(status)s, finished_at = NOW(), error = %(error)s,
    size_bytes = COALESCE(%(size_bytes)s, size_bytes), sha256 = COALESCE(%(sha256)s, sha256),
    download_seconds = %(download_seconds)s
WHERE id = %(id)s;

-- name: interrupt_stale_files
-- Files left 'loading' by a process that died (only run by the holder of the ingestion lock).
UPDATE ss_report_files
SET status = 'interrupted', finished_at = NOW(),
    error = COALESCE(error, 'the process stopped before the file was loaded')
WHERE status = 'loading'
RETURNING id;

-- name: start_run
INSERT INTO ss_ingestion_log (status, kind, window_start, window_end, host, pid)
VALUES ('running', %(kind)s, %(window_start)s, %(window_end)s, %(host)s, %(pid)s)
RETURNING id;

-- name: finish_run
UPDATE ss_ingestion_log
SET run_finished = NOW(), status = %(status)s, reports_found = %(reports_found)s,
    events_ingested = %(events_ingested)s, events_skipped = %(events_skipped)s,
    error_message = %(error_message)s, files_new = %(files_new)s, files_loaded = %(files_loaded)s,
    files_failed = %(files_failed)s, rows_read = %(rows_read)s, rows_duplicate = %(rows_duplicate)s,
    rows_rejected = %(rows_rejected)s, bytes_downloaded = %(bytes_downloaded)s
WHERE id = %(id)s;

-- name: interrupt_stale_runs
-- Runs left 'running' by a process that died (only run by the holder of the ingestion lock), closed with the
-- counts of the files they committed, from the ledger (idx_ss_report_files_run_id).
UPDATE ss_ingestion_log r
SET status = 'interrupted', run_finished = COALESCE(r.run_finished, NOW()),
    error_message = COALESCE(r.error_message, 'the process stopped before the run finished'),
    files_loaded = c.files_loaded, files_failed = c.files_failed, events_ingested = c.rows_inserted,
    rows_read = c.rows_read, rows_duplicate = c.rows_duplicate, rows_rejected = c.rows_rejected,
    events_skipped = c.rows_duplicate + c.rows_rejected, bytes_downloaded = c.bytes
FROM (SELECT s.id,
             COUNT(f.id) FILTER (WHERE f.status = 'loaded') AS files_loaded,
             COUNT(f.id) FILTER (WHERE f.status = 'failed') AS files_failed,
             COALESCE(SUM(f.rows_inserted) FILTER (WHERE f.status = 'loaded'), 0) AS rows_inserted,
             COALESCE(SUM(f.rows_read) FILTER (WHERE f.status = 'loaded'), 0) AS rows_read,
             COALESCE(SUM(f.rows_duplicate) FILTER (WHERE f.status = 'loaded'), 0) AS rows_duplicate,
             COALESCE(SUM(f.rows_rejected) FILTER (WHERE f.status = 'loaded'), 0) AS rows_rejected,
             COALESCE(SUM(f.size_bytes), 0) AS bytes
      FROM ss_ingestion_log s
      LEFT JOIN ss_report_files f ON f.run_id = s.id
      WHERE s.status = 'running'
      GROUP BY s.id) c
WHERE r.id = c.id
RETURNING r.id;

-- name: note_listing
UPDATE ss_ingestion_log SET reports_found = %(reports_found)s, files_new = %(files_new)s WHERE id = %(id)s;

-- name: last_success
-- THE rule for "the last success", used by /health, the scheduler's first-start check and `status`: the
-- newest successful ingestion cycle (v1.0.0's rows have no kind). Imports are runs of local files, not
-- cycles of the feed; prunes are not in this table (migration 0006). Partial index idx_ss_ingestion_log_success.
SELECT MAX(run_finished) FROM ss_ingestion_log
WHERE status = 'success' AND (kind IS NULL OR kind IN ('scheduled', 'backfill', 'once'));

-- name: lock_holders
-- Other sessions holding a lock on one of our tables in a mode that blocks the loader's writes (an analyst's
-- LOCK TABLE, a long ALTER TABLE): named in the error of a file that timed out waiting for it.
SELECT c.relname, l.mode, a.pid, a.usename, a.application_name, COALESCE(a.xact_start, a.backend_start),
       left(regexp_replace(a.query, '\s+', ' ', 'g'), 120)
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid() AND c.relname LIKE 'ss\_%%'
  AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
ORDER BY 6
LIMIT 5;
