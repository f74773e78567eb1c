-- Named queries. Each block: "-- name: <name>", comment lines describing it, then one statement.

-- name: slice_has_rows
-- Whether any event of this report type and date is stored yet (an index probe on the unique key).
SELECT EXISTS (SELECT 1 FROM ss_events WHERE report_type = %(report_type)s AND report_date = %(report_date)s);

-- name: create_key_stage
-- Per-file staging of row identities. Created inside the file's transaction, so each TRUNCATE of it is
-- done in place and nothing of it outlives the transaction.
CREATE TEMP TABLE ss_stage_keys (pos INTEGER NOT NULL, event_hash TEXT NOT NULL, legacy_hash TEXT)
ON COMMIT DROP;

-- name: truncate_key_stage
TRUNCATE ss_stage_keys;

-- name: copy_key_stage
COPY ss_stage_keys (pos, event_hash, legacy_hash) FROM STDIN;

-- name: existing_keys
-- Positions (in the batch) of rows already stored: same key (earlier files, or earlier batches of this
-- file, which the transaction sees), or, for rows with non-ASCII text, the hash v1.0.0 computed after
-- decoding the file as ISO-8859-1. LATERAL ... LIMIT 1 keeps this one unique-index probe per row: as a
-- plain EXISTS, PostgreSQL 17+ may hash the whole report day instead (it did, per batch, at 1M rows,
-- because the statistics cannot know the rows this transaction has just added).
SELECT s.pos
FROM ss_stage_keys s
CROSS JOIN LATERAL (
  SELECT 1 FROM ss_events e
  WHERE e.report_type = %(report_type)s AND e.report_date = %(report_date)s
    AND e.event_hash = ANY (ARRAY[s.event_hash, s.legacy_hash])
  LIMIT 1) AS stored;

-- name: copy_events
-- New rows go straight into ss_events: the dedup probe above has removed the rows already stored, and the
-- ingestion lock keeps other ingestors out, so the unique key is the last line of defence, not a filter.
COPY ss_events (report_type, report_date, file_id, ip, port, asn, geo, hostname, tag, severity, event_time,
                raw_data, event_hash)
FROM STDIN;

-- name: update_findings
-- Fold the rows this file inserted into their findings: first/last seen, times seen.
INSERT INTO ss_findings AS f (report_type, finding_key, first_seen, last_seen, times_seen, first_event_id,
                              last_event_id)
SELECT %(report_type)s, k.finding_key, %(report_date)s, %(report_date)s, COUNT(*), MIN(k.id), MAX(k.id)
FROM (SELECT id,
             COALESCE(abbrev(ip) || CASE WHEN %(key_port)s THEN '|' || COALESCE(port::text, '') ELSE '' END,
                      NULLIF(concat_ws('|', raw_data ->> %(key1)s, raw_data ->> %(key2)s), ''),
                      event_hash) AS finding_key
      FROM ss_events
      WHERE report_type = %(report_type)s AND report_date = %(report_date)s
        AND file_id IS NOT DISTINCT FROM %(file_id)s) k
GROUP BY k.finding_key
ON CONFLICT (report_type, finding_key) DO UPDATE
SET first_seen = LEAST(f.first_seen, EXCLUDED.first_seen),
    first_event_id = CASE WHEN EXCLUDED.first_seen < f.first_seen THEN EXCLUDED.first_event_id
                          ELSE f.first_event_id END,
    last_seen = GREATEST(f.last_seen, EXCLUDED.last_seen),
    last_event_id = CASE WHEN EXCLUDED.last_seen >= f.last_seen THEN EXCLUDED.last_event_id
                         ELSE f.last_event_id END,
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
-- Ledger state of listed files, by source key.
SELECT source_key, status, attempts FROM ss_report_files WHERE source_key = ANY(%(keys)s);

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
-- Runs left 'running' by a process that died (only run by the holder of the ingestion lock).
UPDATE ss_ingestion_log
SET status = 'interrupted', run_finished = COALESCE(run_finished, NOW()),
    error_message = COALESCE(error_message, 'the process stopped before the run finished')
WHERE status = 'running'
RETURNING id;

-- name: last_success
-- The last successful ingestion cycle (v1.0.0's rows have no kind; imports and prunes are not cycles).
SELECT MAX(run_finished) FROM ss_ingestion_log
WHERE status = 'success' AND (kind IS NULL OR kind IN ('scheduled', 'backfill', 'once'));
