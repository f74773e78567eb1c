-- Named queries of findings, trends, report and the feed's alarms (docs/findings.md, docs/report.md). Same
-- block format as queries.sql. They read ss_findings, ss_rollup_daily, ss_report_days, the ledger and the
-- audit log: never ss_events.

-- name: list_findings
-- Findings matching every given filter, the most recently active first (last seen, or resolved).
-- days_to_fix = resolved_at - first_seen (resolved findings only).
SELECT f.report_type, f.finding_key, f.state, f.first_seen, f.last_seen, f.resolved_at,
       (f.resolved_at - f.first_seen) AS days_to_fix, f.reopen_count, f.times_seen, NULLIF(f.severity, '') AS severity,
       NULLIF(f.asn, 0) AS asn, NULLIF(f.geo, '') AS geo
FROM ss_findings f
WHERE (%(state)s::text IS NULL OR f.state = %(state)s::text)
  AND (%(types)s::text[] IS NULL OR f.report_type = ANY(%(types)s::text[]))
  AND (%(org_id)s::integer IS NULL OR %(org_id)s::integer = ANY(f.org_ids))
  AND (%(since)s::date IS NULL OR COALESCE(f.resolved_at, f.last_seen) >= %(since)s::date)
  AND (%(severities)s::text[] IS NULL OR f.severity = ANY(%(severities)s::text[]))
  AND (%(asns)s::bigint[] IS NULL OR f.asn = ANY(%(asns)s::bigint[]))
ORDER BY COALESCE(f.resolved_at, f.last_seen) DESC, f.report_type, f.finding_key
LIMIT %(limit)s;

-- name: open_findings_by_type
-- Open findings per report type and severity (the metrics; partial index idx_ss_findings_open).
SELECT report_type, severity, count(*) AS findings
FROM ss_findings
WHERE state = 'open'
GROUP BY report_type, severity
ORDER BY report_type, severity;

-- name: rollup_daily
-- The rollup per report date and type from a day (organisation 0: every row), optionally one organisation.
SELECT report_date, report_type, sum(rows)::bigint AS rows, sum(subjects)::bigint AS subjects,
       sum(new_findings)::bigint AS new_findings, sum(resolved_findings)::bigint AS resolved_findings,
       sum(reopened_findings)::bigint AS reopened_findings
FROM ss_rollup_daily
WHERE report_date >= %(since)s AND org_id = COALESCE(%(org_id)s::integer, 0)
GROUP BY report_date, report_type
ORDER BY report_date, report_type;

-- name: open_before
-- Findings open at the end of a day, per type: every transition up to it (new + reopened - resolved).
SELECT report_type, sum(new_findings + reopened_findings - resolved_findings)::bigint AS open_findings
FROM ss_rollup_daily
WHERE report_date < %(since)s AND org_id = COALESCE(%(org_id)s::integer, 0)
GROUP BY report_type;

-- name: top_asns
-- The ASNs with the most subjects over a window (subjects summed over its days).
SELECT asn, sum(subjects)::bigint AS subjects, sum(rows)::bigint AS rows, count(DISTINCT report_type) AS types
FROM ss_rollup_daily
WHERE report_date >= %(since)s AND org_id = COALESCE(%(org_id)s::integer, 0)
GROUP BY asn
ORDER BY subjects DESC, asn
LIMIT %(limit)s;

-- name: time_to_fix
-- Days from first seen to resolved, of the findings resolved in a window.
SELECT report_type, (resolved_at - first_seen) AS days, count(*) AS findings
FROM ss_findings
WHERE state = 'resolved' AND resolved_at >= %(since)s
  AND (%(org_id)s::integer IS NULL OR %(org_id)s::integer = ANY(org_ids))
GROUP BY report_type, days
ORDER BY report_type, days;

-- name: feed_days
-- The feed's own health per report date: files listed (any outcome), loaded, failed, rows read and inserted
-- (the ledger; idx_ss_report_files_report_date).
SELECT report_date, count(*) AS files, count(*) FILTER (WHERE status = 'loaded') AS loaded,
       count(*) FILTER (WHERE status IN ('failed', 'interrupted')) AS failed,
       COALESCE(sum(rows_read), 0)::bigint AS rows_read, COALESCE(sum(rows_inserted), 0)::bigint AS rows_inserted,
       count(DISTINCT report_type) AS types
FROM ss_report_files
WHERE report_date >= %(since)s
GROUP BY report_date
ORDER BY report_date;

-- name: type_arrivals
-- Report types with a file (any outcome: it arrived) in the days before a reference day, and whether one
-- arrived on it.
SELECT report_type, count(DISTINCT report_date) FILTER (WHERE report_date < %(day)s) AS days_before,
       bool_or(report_date = %(day)s) AS on_day, max(report_date) AS last_date
FROM ss_report_files
WHERE report_date BETWEEN %(day)s::date - %(window)s AND %(day)s::date
GROUP BY report_type
ORDER BY report_type;

-- name: newest_report_date
SELECT max(report_date) FROM ss_report_files;

-- name: recent_cycles
-- The latest finished ingestion cycles (not imports), newest first.
SELECT status, reports_found, run_started
FROM ss_ingestion_log
WHERE (kind IS NULL OR kind IN ('scheduled', 'backfill', 'once')) AND status <> 'running'
ORDER BY id DESC
LIMIT %(limit)s;

-- name: column_drift
-- Columns of loaded files not in the type's published schema (new) and published ones missing from files
-- (vanished), with the report dates they were first and last so, and whether the type's latest file still
-- shows the change.
WITH latest AS (
  SELECT DISTINCT ON (report_type) report_type, columns_unknown, columns_missing
  FROM ss_report_files
  WHERE status = 'loaded' AND known_type
  ORDER BY report_type, report_date DESC, id DESC),
changes AS (
  SELECT report_type, 'new' AS change, unnest(columns_unknown) AS column_name, report_date
  FROM ss_report_files WHERE status = 'loaded' AND known_type
  UNION ALL
  SELECT report_type, 'vanished', unnest(columns_missing), report_date
  FROM ss_report_files WHERE status = 'loaded' AND known_type)
SELECT c.report_type, c.change, c.column_name, min(c.report_date) AS first_seen, max(c.report_date) AS last_seen,
       count(*) AS files,
       bool_or(CASE c.change WHEN 'new' THEN c.column_name = ANY(l.columns_unknown)
                             ELSE c.column_name = ANY(l.columns_missing) END) AS current
FROM changes c
JOIN latest l USING (report_type)
GROUP BY c.report_type, c.change, c.column_name
ORDER BY c.report_type, c.change, min(c.report_date), c.column_name;
