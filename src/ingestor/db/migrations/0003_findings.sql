-- Findings: what an operator acts on. A finding is a report type plus its subject IP and service port
-- (client ports of event reports are ephemeral and left out), or a natural key for the report types
-- without an IP (e.g. the e-mail address of compromised_account). Keys read '192.0.2.1|443' (abbrev()). The loader keeps first/last seen and a
-- count up to date from the rows it inserts, so "what is new since yesterday" reads this small table
-- through its first_seen index instead of anti-joining millions of events.
CREATE TABLE IF NOT EXISTS ss_findings (
  report_type TEXT NOT NULL,
  finding_key TEXT NOT NULL,
  first_seen DATE NOT NULL,
  last_seen DATE NOT NULL,
  times_seen BIGINT NOT NULL,
  first_event_id BIGINT,
  last_event_id BIGINT,
  PRIMARY KEY (report_type, finding_key)
) WITH (fillfactor = 90);
CREATE INDEX IF NOT EXISTS idx_ss_findings_first_seen ON ss_findings (first_seen);

-- Existing events (a v1.0.0 database, or one loaded before this migration) seed the table.
INSERT INTO ss_findings (report_type, finding_key, first_seen, last_seen, times_seen, first_event_id, last_event_id)
SELECT report_type, COALESCE(abbrev(ip) || '|' || COALESCE(port::text, ''), event_hash),
       MIN(report_date), MAX(report_date), COUNT(*), MIN(id), MAX(id)
FROM ss_events
GROUP BY 1, 2
ON CONFLICT DO NOTHING;
