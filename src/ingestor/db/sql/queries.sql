-- Named queries. Each block: "-- name: <name>", comment lines describing it, then one statement.

-- name: create_stage
-- A per-file staging table. Created inside the file's transaction, so every TRUNCATE of it is done in
-- place and nothing of it outlives the transaction.
CREATE TEMP TABLE ss_stage (
  ip INET, port INTEGER, asn BIGINT, geo TEXT, hostname TEXT, tag TEXT, severity TEXT,
  event_time TIMESTAMPTZ, raw_data JSONB NOT NULL, event_hash TEXT NOT NULL, legacy_hash TEXT
) ON COMMIT DROP;

-- name: truncate_stage
TRUNCATE ss_stage;

-- name: copy_stage
COPY ss_stage (ip, port, asn, geo, hostname, tag, severity, event_time, raw_data, event_hash, legacy_hash)
FROM STDIN;

-- name: insert_events
-- Move staged rows into ss_events in file order, skipping rows already stored: same key, or (for rows
-- with non-ASCII text) the hash v1.0.0 computed after decoding the file as ISO-8859-1.
INSERT INTO ss_events (report_type, report_date, ip, port, asn, geo, hostname, tag, severity, event_time,
                       raw_data, event_hash, file_id)
SELECT %(report_type)s, %(report_date)s, s.ip, s.port, s.asn, s.geo, s.hostname, s.tag, s.severity,
       s.event_time, s.raw_data, s.event_hash, %(file_id)s
FROM ss_stage s
WHERE s.legacy_hash IS NULL
   OR NOT EXISTS (SELECT 1 FROM ss_events e
                  WHERE e.report_type = %(report_type)s AND e.report_date = %(report_date)s
                    AND e.event_hash = s.legacy_hash)
ON CONFLICT (report_type, report_date, event_hash) DO NOTHING;

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
SELECT MAX(run_finished) FROM ss_ingestion_log WHERE status = 'success';
