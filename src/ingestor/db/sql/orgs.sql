-- Named queries of the constituents (orgs) and the notification digests. Same block format as queries.sql.

-- name: org_token
-- The constituents' version: a new token on every change (loaders rebuild their matcher only then).
SELECT token FROM ss_org_state;

-- name: bump_org_token
UPDATE ss_org_state SET token = gen_random_uuid()::text, changed_at = NOW();

-- name: lock_org_state
-- Changes to the constituents are serialised (two imports at once would interleave their replacements).
SELECT token FROM ss_org_state FOR UPDATE;

-- name: org_by_name
SELECT id, source, handle FROM ss_orgs WHERE name = %(name)s;

-- name: org_by_handle
SELECT id, source, name FROM ss_orgs WHERE handle = %(handle)s;

-- name: upsert_org
-- One organisation by name; its contacts and networks are replaced next (the file is the authority for the
-- organisations it names).
INSERT INTO ss_orgs AS o (name, source, handle, country, language, tags, notify_enabled, notify_interval_hours,
                          notify_types, notify_min_severity, notify_mode, notify_format)
VALUES (%(name)s, %(source)s, %(handle)s, %(country)s, %(language)s, %(tags)s, %(notify_enabled)s,
        %(notify_interval_hours)s, %(notify_types)s, %(notify_min_severity)s, %(notify_mode)s, %(notify_format)s)
ON CONFLICT (name) DO UPDATE
SET source = EXCLUDED.source, handle = EXCLUDED.handle, country = EXCLUDED.country, language = EXCLUDED.language,
    tags = EXCLUDED.tags, notify_enabled = EXCLUDED.notify_enabled,
    notify_interval_hours = EXCLUDED.notify_interval_hours, notify_types = EXCLUDED.notify_types,
    notify_min_severity = EXCLUDED.notify_min_severity, notify_mode = EXCLUDED.notify_mode,
    notify_format = EXCLUDED.notify_format, updated_at = NOW()
RETURNING id;

-- name: clear_org_contacts
DELETE FROM ss_org_contacts WHERE org_id = %(org_id)s;

-- name: clear_org_networks
DELETE FROM ss_org_networks WHERE org_id = %(org_id)s;

-- name: copy_org_contacts
COPY ss_org_contacts (org_id, email) FROM STDIN;

-- name: copy_org_networks
COPY ss_org_networks (org_id, cidr, asn, domain) FROM STDIN;

-- name: delete_org
DELETE FROM ss_orgs WHERE name = %(name)s RETURNING id;

-- name: ripe_orgs_not_in
-- RIPE-imported organisations whose handle a new RIPE import of the same scope no longer has.
SELECT id, name FROM ss_orgs WHERE source = 'ripe' AND NOT (handle = ANY(%(handles)s::text[])) ORDER BY name;

-- name: matcher_networks
-- Everything the matcher needs, with the version token it belongs to: one statement, one snapshot (a change
-- committed between reading the token and the networks would file new networks under the old token).
SELECT s.token, n.org_id, n.cidr, n.asn, n.domain, n.manual
FROM ss_org_state s
LEFT JOIN (SELECT n.org_id, n.cidr, n.asn, n.domain, o.source = 'manual' AS manual
           FROM ss_org_networks n JOIN ss_orgs o ON o.id = n.org_id) n ON true;

-- name: list_orgs
SELECT o.id, o.name, o.source, o.handle, o.language, o.tags, o.notify_enabled, o.notify_interval_hours,
       o.notify_mode,
       (SELECT string_agg(c.email, ' ' ORDER BY c.email) FROM ss_org_contacts c WHERE c.org_id = o.id) AS emails,
       (SELECT COUNT(*) FROM ss_org_networks n WHERE n.org_id = o.id AND n.cidr IS NOT NULL) AS cidrs,
       (SELECT COUNT(*) FROM ss_org_networks n WHERE n.org_id = o.id AND n.asn IS NOT NULL) AS asns,
       (SELECT COUNT(*) FROM ss_org_networks n WHERE n.org_id = o.id AND n.domain IS NOT NULL) AS domains,
       (SELECT MAX(s.sent_at) FROM ss_notifications s WHERE s.org_id = o.id AND s.status = 'sent') AS last_digest
FROM ss_orgs o
WHERE (%(tag)s::text IS NULL OR %(tag)s::text = ANY(o.tags))
ORDER BY o.name;

-- name: org_detail
SELECT o.*,
       ARRAY(SELECT c.email FROM ss_org_contacts c WHERE c.org_id = o.id ORDER BY c.email) AS emails,
       ARRAY(SELECT n.cidr::text FROM ss_org_networks n WHERE n.org_id = o.id AND n.cidr IS NOT NULL
             ORDER BY n.cidr) AS cidrs,
       ARRAY(SELECT n.asn FROM ss_org_networks n WHERE n.org_id = o.id AND n.asn IS NOT NULL ORDER BY n.asn) AS asns,
       ARRAY(SELECT n.domain FROM ss_org_networks n WHERE n.org_id = o.id AND n.domain IS NOT NULL
             ORDER BY n.domain) AS domains
FROM ss_orgs o WHERE o.name = %(name)s;

-- name: org_event_counts
-- An organisation's events and distinct findings per report type since a date (the report-date range of the
-- unique key, filtered by org_ids).
SELECT e.report_type, COUNT(*) AS events,
       COUNT(DISTINCT ss_finding_key(e.report_type, e.ip, e.port, e.raw_data, e.event_hash)) AS findings,
       MIN(e.report_date) AS first_date, MAX(e.report_date) AS last_date
FROM ss_events e
WHERE e.report_date >= %(since)s AND %(org_id)s = ANY(e.org_ids)
GROUP BY e.report_type ORDER BY e.report_type;

-- name: org_digests
SELECT id, ticket, status, events, findings, suppressed, recipients, prepared_at, sent_at, attempts, error
FROM ss_notifications WHERE org_id = %(org_id)s ORDER BY id DESC LIMIT %(limit)s;

-- name: org_status
-- Per organisation: events matched since a date, and the state of its digests (status per organisation).
SELECT o.name, COALESCE(m.events, 0) AS events, COALESCE(m.hosts, 0) AS hosts,
       (SELECT MAX(s.sent_at) FROM ss_notifications s WHERE s.org_id = o.id AND s.status = 'sent') AS last_digest,
       (SELECT COUNT(*) FROM ss_notifications s WHERE s.org_id = o.id AND s.status = 'failed') AS failed_digests,
       (SELECT COUNT(*) FROM ss_notifications s
        WHERE s.org_id = o.id AND s.status = 'prepared' AND s.attempt_started_at IS NOT NULL) AS in_doubt
FROM ss_orgs o
LEFT JOIN (SELECT u.org_id, COUNT(*) AS events, COUNT(DISTINCT e.ip) AS hosts
           FROM ss_events e CROSS JOIN LATERAL unnest(e.org_ids) AS u(org_id)
           WHERE e.report_date >= %(since)s AND e.org_ids IS NOT NULL
           GROUP BY u.org_id) m ON m.org_id = o.id
ORDER BY COALESCE(m.events, 0) DESC, o.name
LIMIT %(limit)s;

-- name: unmatched_summary
-- Events no organisation owns since a date, by report type: what a CERT must route by hand.
SELECT report_type, COUNT(*) AS events, COUNT(DISTINCT ip) AS hosts, MIN(report_date) AS first_date,
       MAX(report_date) AS last_date
FROM ss_events
WHERE report_date >= %(since)s AND org_ids IS NULL
GROUP BY report_type ORDER BY COUNT(*) DESC, report_type;

-- name: unmatched_events
-- The unmatched events themselves, newest report date first, in the unique key's order.
SELECT e.id, e.report_type, e.report_date, e.ip, e.port, e.asn, e.geo, e.hostname, e.tag, e.severity,
       e.event_time, CASE WHEN %(with_raw)s THEN e.raw_data END AS raw_data
FROM ss_events e
WHERE e.report_date >= %(since)s AND e.org_ids IS NULL
  AND (%(types)s::text[] IS NULL OR e.report_type = ANY(%(types)s::text[]))
ORDER BY e.report_date DESC NULLS LAST, e.report_type, e.event_hash
LIMIT %(limit)s;

-- name: rematch_read
-- One report date's events as the matcher sees them (a range of the unique key; one partition).
COPY (SELECT id, host(ip), asn, hostname, org_ids::text FROM ss_events WHERE report_date = %(report_date)s) TO STDOUT;

-- name: create_rematch_stage
CREATE TEMP TABLE ss_stage_rematch (id BIGINT NOT NULL, org_ids INTEGER[]) ON COMMIT DROP;

-- name: copy_rematch_stage
COPY ss_stage_rematch (id, org_ids) FROM STDIN;

-- name: apply_rematch
-- The changed rows of one report date, updated through the primary key in key order (a concurrent writer
-- of the same rows waits instead of deadlocking).
UPDATE ss_events e SET org_ids = s.org_ids
FROM (SELECT id, org_ids FROM ss_stage_rematch ORDER BY id) s
WHERE e.report_date = %(report_date)s AND e.id = s.id;

-- name: notify_lock
-- One notify at a time per database (the service's and an operator's would prepare the same digests).
SELECT pg_try_advisory_lock(hashtext('shadowserver-ingestor notify'));

-- name: notify_unlock
SELECT pg_advisory_unlock(hashtext('shadowserver-ingestor notify'));

-- name: notify_orgs
-- Organisations that may get a digest, with their settings and contacts, and whether their interval is due
-- (no digest prepared within it).
SELECT o.id, o.name, o.language, o.notify_enabled, o.notify_interval_hours, o.notify_types,
       o.notify_min_severity, o.notify_mode, o.notify_format,
       ARRAY(SELECT c.email FROM ss_org_contacts c WHERE c.org_id = o.id ORDER BY c.email) AS emails,
       NOT EXISTS (SELECT 1 FROM ss_notifications s
                   WHERE s.org_id = o.id AND s.prepared_at > NOW() - make_interval(hours => o.notify_interval_hours)) AS due
FROM ss_orgs o
WHERE (%(name)s::text IS NULL OR o.name = %(name)s::text)
ORDER BY o.id;

-- name: digest_events
-- Every event of the given organisations from a report date on whose file no digest covered for that
-- organisation yet, with its finding key and the finding's first report date, ordered for streaming one
-- organisation and one report type at a time. A file's events become visible together (one transaction),
-- so the files covered are exactly the ones seen here: a file committed later is in the next digest.
SELECT o.org_id, e.report_type, e.report_date, e.file_id, e.ip, e.severity, e.raw_data,
       k.finding_key, f.first_seen
FROM ss_events e
CROSS JOIN LATERAL unnest(e.org_ids) AS o(org_id)
CROSS JOIN LATERAL (SELECT ss_finding_key(e.report_type, e.ip, e.port, e.raw_data, e.event_hash) AS finding_key) k
LEFT JOIN ss_findings f ON f.report_type = e.report_type AND f.finding_key = k.finding_key
WHERE e.report_date >= %(since)s AND e.org_ids IS NOT NULL AND e.file_id IS NOT NULL
  AND o.org_id = ANY(%(org_ids)s::integer[])
  AND NOT EXISTS (SELECT 1 FROM ss_notification_files c WHERE c.org_id = o.org_id AND c.file_id = e.file_id)
ORDER BY o.org_id, e.report_type, e.report_date, e.event_hash;

-- name: recently_notified
-- The findings sent to an organisation within the suppression window.
SELECT report_type, finding_key FROM ss_notified_findings
WHERE org_id = %(org_id)s AND last_sent_at > NOW() - make_interval(hours => %(hours)s);

-- name: next_notification_id
SELECT nextval(pg_get_serial_sequence('ss_notifications', 'id'));

-- name: insert_notification_with_id
INSERT INTO ss_notifications (id, org_id, org_name, ticket, message_id, recipients, window_start, window_end,
                              events, findings, suppressed, message)
VALUES (%(id)s, %(org_id)s, %(org_name)s, %(ticket)s, %(message_id)s, %(recipients)s, %(window_start)s,
        %(window_end)s, %(events)s, %(findings)s, %(suppressed)s, %(message)s);

-- name: cover_files
-- The files a digest covered for its organisation (in key order: concurrent writers lock alike).
INSERT INTO ss_notification_files (org_id, file_id, notification_id)
SELECT %(org_id)s, f, %(notification_id)s FROM unnest(%(file_ids)s::bigint[]) AS f ORDER BY f
ON CONFLICT (org_id, file_id) DO NOTHING;

-- name: note_findings
-- The findings a digest sent, for the suppression window (in key order).
INSERT INTO ss_notified_findings AS n (org_id, report_type, finding_key, last_sent_at, notification_id)
SELECT %(org_id)s, t, k, NOW(), %(notification_id)s
FROM unnest(%(types)s::text[], %(keys)s::text[]) AS u(t, k)
ORDER BY t, k
ON CONFLICT (org_id, report_type, finding_key) DO UPDATE
SET last_sent_at = EXCLUDED.last_sent_at, notification_id = EXCLUDED.notification_id;

-- name: pending_notifications
-- Digests to send now: prepared and never attempted, or failed (retried with the same message).
SELECT id, ticket, org_name, recipients, message, status, attempts
FROM ss_notifications
WHERE (status = 'prepared' AND attempt_started_at IS NULL) OR status = 'failed'
ORDER BY id;

-- name: in_doubt_notifications
-- Digests whose sending started but whose outcome was never recorded (the process stopped in between):
-- the SMTP server may have accepted them. Never resent without the operator's word.
SELECT id, ticket, org_name, attempt_started_at FROM ss_notifications
WHERE status = 'prepared' AND attempt_started_at IS NOT NULL ORDER BY id;

-- name: start_attempt
UPDATE ss_notifications SET attempt_started_at = NOW(), attempts = attempts + 1 WHERE id = %(id)s;

-- name: mark_sent
-- A sent digest's message is dropped (the Bcc archive keeps a copy): the log keeps the facts, not megabytes.
UPDATE ss_notifications SET status = 'sent', sent_at = NOW(), error = %(error)s, message = NULL WHERE id = %(id)s;

-- name: mark_failed
UPDATE ss_notifications SET status = 'failed', error = %(error)s, attempt_started_at = NULL WHERE id = %(id)s;

-- name: resolve_sent
UPDATE ss_notifications SET status = 'sent', sent_at = COALESCE(sent_at, NOW()),
       error = 'marked sent by the operator', message = NULL
WHERE ticket = %(ticket)s AND status = 'prepared' AND attempt_started_at IS NOT NULL RETURNING id;

-- name: resolve_resend
UPDATE ss_notifications SET attempt_started_at = NULL, error = 'to be resent (operator)'
WHERE ticket = %(ticket)s AND status = 'prepared' AND attempt_started_at IS NOT NULL RETURNING id;
