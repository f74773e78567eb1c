-- Named queries of the operator commands (status, search, new, types, prune). Same block format as
-- queries.sql: "-- name: <name>", comment lines, one statement.
--
-- Search filters are optional parameters: "(%(x)s IS NULL OR <condition>)". Each statement runs once with
-- its values bound (a custom plan), so PostgreSQL folds an absent filter to TRUE and plans a present one
-- as a constant: "ip <<= '192.0.2.0/24'" becomes an index range scan on idx_ss_events_ip
-- (tests/integration/test_ops_plans.py checks every plan).

-- name: search_events
-- --org: the events whose org_ids hold the organisation (no index of its own: the other filters' indexes, or
-- the report-date order newest first until the limit; see docs/constituents.md).
-- Events matching every given filter, newest report date first (IRIS Data Explorer's default order), in the
-- order of the unique key, which leads with report_date DESC NULLS LAST: rows stream without a sort.
-- raw_data only when the output shows it (JSON): decoding it costs more than all other columns together.
SELECT e.id, e.report_type, e.report_date, e.ip, e.port, e.asn, e.geo, e.hostname, e.tag, e.severity,
       e.event_time, CASE WHEN %(with_raw)s THEN e.raw_data END AS raw_data
FROM ss_events e
WHERE (%(ip)s::inet IS NULL OR e.ip <<= %(ip)s::inet)
  AND (%(asns)s::bigint[] IS NULL OR e.asn = ANY(%(asns)s::bigint[]))
  AND (%(hostname)s::text IS NULL OR e.hostname = %(hostname)s::text)
  AND (%(hostname_like)s::text IS NULL OR e.hostname LIKE %(hostname_like)s::text)
  AND (%(types)s::text[] IS NULL OR e.report_type = ANY(%(types)s::text[]))
  AND (%(severities)s::text[] IS NULL OR e.severity = ANY(%(severities)s::text[]))
  AND (%(since)s::date IS NULL OR e.report_date >= %(since)s::date)
  AND (%(until)s::date IS NULL OR e.report_date <= %(until)s::date)
  AND (%(tag)s::text IS NULL OR e.tag ILIKE %(tag)s::text)
  AND (%(text)s::text IS NULL OR e.raw_data::text ILIKE %(text)s::text)
  AND (%(org_id)s::integer IS NULL OR %(org_id)s::integer = ANY(e.org_ids))
ORDER BY e.report_date DESC NULLS LAST, e.report_type, e.event_hash
LIMIT %(limit)s;

-- name: new_findings
-- Findings first seen inside [since, until] (so absent from everything stored before since), shown with
-- the event that first reported them. ss_findings keeps its history through a prune, so the first event
-- may be gone: the LEFT JOIN keeps such a finding (an event filter drops it, as it cannot be checked).
SELECT f.report_type, f.first_seen, f.last_seen, f.times_seen, f.finding_key,
       e.id, e.report_date, e.ip, e.port, e.asn, e.geo, e.hostname, e.tag, e.severity, e.event_time,
       CASE WHEN %(with_raw)s THEN e.raw_data END AS raw_data
FROM ss_findings f
LEFT JOIN ss_events e
  ON e.report_type = f.report_type AND e.report_date = f.first_seen AND e.event_hash = f.first_event_hash
WHERE f.first_seen BETWEEN %(since)s::date AND %(until)s::date
  AND (%(types)s::text[] IS NULL OR f.report_type = ANY(%(types)s::text[]))
  AND (%(ip)s::inet IS NULL OR e.ip <<= %(ip)s::inet)
  AND (%(asns)s::bigint[] IS NULL OR e.asn = ANY(%(asns)s::bigint[]))
  AND (%(hostname)s::text IS NULL OR e.hostname = %(hostname)s::text)
  AND (%(hostname_like)s::text IS NULL OR e.hostname LIKE %(hostname_like)s::text)
  AND (%(severities)s::text[] IS NULL OR e.severity = ANY(%(severities)s::text[]))
  AND (%(tag)s::text IS NULL OR e.tag ILIKE %(tag)s::text)
  AND (%(text)s::text IS NULL OR e.raw_data::text ILIKE %(text)s::text)
  AND (%(org_id)s::integer IS NULL OR %(org_id)s::integer = ANY(e.org_ids))
ORDER BY f.first_seen DESC, f.report_type, f.finding_key
LIMIT %(limit)s;

-- name: type_is_stored
-- Whether events or ledger entries of a report type exist (index probes: the unique key starts with
-- report_type; the ledger is small).
SELECT EXISTS (SELECT 1 FROM ss_events WHERE report_type = %(report_type)s)
    OR EXISTS (SELECT 1 FROM ss_report_files WHERE report_type = %(report_type)s);

-- name: status_runs
-- The latest runs of the audit log, newest first.
SELECT id, kind, status, run_started, run_finished,
       EXTRACT(EPOCH FROM (COALESCE(run_finished, NOW()) - run_started))::double precision AS seconds,
       window_start, window_end, reports_found, files_new, files_loaded, files_failed,
       events_ingested, rows_duplicate, rows_rejected, events_skipped, bytes_downloaded, error_message
FROM ss_ingestion_log
ORDER BY id DESC
LIMIT %(runs)s;

-- name: status_failed_files
-- Files whose latest attempt failed or was interrupted in the last days (partial index
-- idx_ss_report_files_unfinished). The ledger keeps no download id, only the file name.
SELECT file_name, source, report_type, report_date, status, attempts, error, finished_at
FROM ss_report_files
WHERE status IN ('failed', 'interrupted')
  AND COALESCE(finished_at, started_at, first_listed_at) >= NOW() - make_interval(days => %(days)s)
ORDER BY COALESCE(finished_at, started_at, first_listed_at) DESC
LIMIT %(limit)s;

-- name: unknown_types
-- Report types loaded although the catalog does not know them (loaded with the generic mapping).
SELECT report_type, COUNT(*) AS files, SUM(rows_inserted)::bigint AS rows_inserted,
       MIN(report_date) AS first_date, MAX(report_date) AS last_date
FROM ss_report_files
WHERE known_type = false
GROUP BY report_type
ORDER BY report_type;

-- name: rows_by_type_and_date
-- Events per report type and report date since a day (range scan of the unique key, which leads with the date).
SELECT report_type, report_date, COUNT(*) AS events
FROM ss_events
WHERE report_date >= %(since)s
GROUP BY report_type, report_date
ORDER BY report_type, report_date;

-- name: database_summary
-- Sizes and extent without counting: reltuples is PostgreSQL's estimate (exact after ANALYZE); a table
-- never analysed yet (reltuples -1, so a small one: autovacuum analyses large ones) is counted.
SELECT pg_database_size(current_database()) AS database_bytes,
       (SELECT COALESCE(SUM(pg_total_relation_size(relid)), 0) FROM pg_partition_tree('ss_events')) AS events_bytes,
       (SELECT CASE WHEN reltuples < 0 THEN (SELECT COUNT(*) FROM ss_events) ELSE reltuples::bigint END
        FROM pg_class WHERE oid = 'ss_events'::regclass) AS events_estimate,
       (SELECT CASE WHEN reltuples < 0 THEN (SELECT COUNT(*) FROM ss_findings) ELSE reltuples::bigint END
        FROM pg_class WHERE oid = 'ss_findings'::regclass) AS findings_estimate,
       (SELECT MIN(report_date) FROM ss_events) AS first_report_date,
       (SELECT MAX(report_date) FROM ss_events) AS last_report_date,
       (SELECT MAX(version) FROM ss_schema_migrations) AS schema_version;

-- name: rows_by_type
-- Exact events per report type, with their report date range (one pass over the table).
SELECT report_type, COUNT(*) AS events, MIN(report_date) AS first_date, MAX(report_date) AS last_date
FROM ss_events
GROUP BY report_type
ORDER BY report_type;

-- name: ledger_types
-- Report types of the ledger, and whether the loader knew them.
SELECT report_type, COUNT(*) AS files, bool_or(known_type = false) AS unknown
FROM ss_report_files
GROUP BY report_type;

-- name: old_report_dates
-- Report dates from a day to before the cutoff, with their event counts (range scan of the unique key).
SELECT report_date, COUNT(*) AS events
FROM ss_events
WHERE report_date >= %(from)s AND report_date < %(cutoff)s
GROUP BY report_date
ORDER BY report_date;

-- name: reported_events
-- Events per report date of a range as ss_reports counted them when they were inserted: what a dropped
-- partition held, without counting its rows one by one.
SELECT report_date, SUM(event_count)::bigint AS events
FROM ss_reports
WHERE report_date >= %(from)s AND report_date < %(until)s
GROUP BY report_date
ORDER BY report_date;

-- name: delete_events_batch
-- At most one batch of one report date's events: a short transaction, each row found through
-- the unique key (it leads with report_date) and deleted through the primary key.
DELETE FROM ss_events
WHERE report_date = %(report_date)s
  AND id = ANY(ARRAY(SELECT id FROM ss_events WHERE report_date = %(report_date)s LIMIT %(batch)s));

-- name: count_old_reports
SELECT COUNT(*) FROM ss_reports WHERE report_date < %(cutoff)s;

-- name: delete_old_reports
-- v1.0.0's per type-and-date counters of the dates whose events are gone.
DELETE FROM ss_reports WHERE report_date < %(cutoff)s;

-- name: count_old_files
SELECT COUNT(*) FROM ss_report_files WHERE report_date < %(cutoff)s AND status <> 'loading';

-- name: delete_old_files
-- Ledger entries (and, by cascade, their rejected-row samples) of old report dates.
DELETE FROM ss_report_files WHERE report_date < %(cutoff)s AND status <> 'loading';

-- name: count_old_runs
SELECT COUNT(*) FROM ss_ingestion_log WHERE run_started < %(before)s AND status <> 'running';

-- name: delete_old_runs
-- Audit rows of finished runs started before a time (ledger rows pointing at them keep run_id NULL).
DELETE FROM ss_ingestion_log WHERE run_started < %(before)s AND status <> 'running';

-- name: start_prune
INSERT INTO ss_maintenance_log (kind, cutoff, host, pid) VALUES ('prune', %(cutoff)s, %(host)s, %(pid)s) RETURNING id;

-- name: finish_prune
-- Close a prune's row in the maintenance log (never in ss_ingestion_log: see migration 0006).
UPDATE ss_maintenance_log
SET finished_at = NOW(), status = %(status)s, events_deleted = %(deleted)s, reports_deleted = %(reports)s,
    files_deleted = %(files)s, runs_deleted = %(runs)s, first_date = %(first_date)s, last_date = %(last_date)s,
    seconds = %(seconds)s, error = %(error_message)s
WHERE id = %(id)s;

-- name: recent_maintenance
-- The latest maintenance runs (prunes), newest first.
SELECT id, kind, status, started_at, finished_at, cutoff, events_deleted, reports_deleted, files_deleted,
       runs_deleted, first_date, last_date, seconds, error
FROM ss_maintenance_log
ORDER BY id DESC
LIMIT %(limit)s;

-- name: distinct_report_dates
-- Every report date of ss_events, from the unique key (it leads with report_date) one index descent per
-- date instead of a scan of every row (a "loose index scan").
WITH RECURSIVE day AS (
  (SELECT report_date FROM ss_events ORDER BY report_date DESC NULLS LAST LIMIT 1)
  UNION ALL
  SELECT (SELECT e.report_date FROM ss_events e WHERE e.report_date < day.report_date
          ORDER BY e.report_date DESC NULLS LAST LIMIT 1)
  FROM day WHERE day.report_date IS NOT NULL
)
SELECT report_date FROM day WHERE report_date IS NOT NULL;

-- name: doctor_database
-- What `doctor` asks the database: the server's version, the role's privileges, the viewer role's.
SELECT current_setting('server_version_num')::int AS version_num,
       current_setting('server_version') AS version,
       current_user AS role,
       current_database() AS database,
       has_schema_privilege(current_user, current_schema(), 'CREATE') AS can_create,
       has_database_privilege(current_user, current_database(), 'TEMPORARY') AS can_temp,
       to_regclass('ss_events') IS NOT NULL AS has_events,
       CASE WHEN to_regclass('ss_events') IS NOT NULL
            THEN has_table_privilege(current_user, 'ss_events', 'INSERT') END AS can_insert,
       EXISTS (SELECT FROM pg_roles WHERE rolname = %(viewer)s) AS viewer_exists,
       CASE WHEN to_regclass('ss_events') IS NOT NULL AND EXISTS (SELECT FROM pg_roles WHERE rolname = %(viewer)s)
            THEN has_table_privilege(%(viewer)s, 'ss_events', 'SELECT')
                 AND has_table_privilege(%(viewer)s, 'ss_ingestion_log', 'SELECT') END AS viewer_can_read,
       EXISTS (SELECT FROM pg_roles WHERE rolname = %(viewer)s AND rolcanlogin) AS viewer_can_login;
