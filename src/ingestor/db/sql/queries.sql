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
-- The file's inserted rows as (finding key, event_hash), folded into ss_findings once at the end.
CREATE TEMP TABLE ss_stage_findings (finding_key TEXT NOT NULL, event_hash TEXT NOT NULL) ON COMMIT DROP;

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
-- from the staged values by ss_finding_key(), the one definition of a finding (migration 0004). Reads only
-- the small temporary stage: nothing of ss_events is read back.
INSERT INTO ss_stage_findings (finding_key, event_hash)
SELECT ss_finding_key(%(report_type)s, s.ip, s.port, s.raw_data, s.event_hash), s.event_hash
FROM ss_stage_keys s
WHERE s.pos <> ALL (%(stored)s::integer[]);

-- name: update_findings
-- Fold the file's inserted rows into their findings: first/last seen (and the event that first/last
-- reported each), times seen. The upsert reaches ss_findings through its primary key only.
INSERT INTO ss_findings AS f (report_type, finding_key, first_seen, last_seen, times_seen, first_event_hash,
                              last_event_hash)
SELECT %(report_type)s, finding_key, %(report_date)s, %(report_date)s, COUNT(*), MIN(event_hash), MIN(event_hash)
FROM ss_stage_findings
GROUP BY finding_key
ON CONFLICT (report_type, finding_key) DO UPDATE
SET first_seen = LEAST(f.first_seen, EXCLUDED.first_seen),
    first_event_hash = CASE WHEN EXCLUDED.first_seen < f.first_seen THEN EXCLUDED.first_event_hash
                            ELSE f.first_event_hash END,
    last_seen = GREATEST(f.last_seen, EXCLUDED.last_seen),
    last_event_hash = CASE WHEN EXCLUDED.last_seen >= f.last_seen THEN EXCLUDED.last_event_hash
                           ELSE f.last_event_hash END,
    times_seen = f.times_seen + EXCLUDED.times_seen;

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
