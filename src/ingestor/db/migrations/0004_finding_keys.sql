-- One definition of a finding's key, used by this migration, by the loader and by any rebuild.
--
-- Migration 3 seeded keys as abbrev(ip) || '|' || port for every type while the loader left the ephemeral
-- client port of event reports out and used natural keys for the types without an IP: a host a v1.0.0
-- database already held came back as "new" after the upgrade. The rule now lives in this function only:
--
--   * a row with a subject IP: abbrev(ip), plus '|' and the service port for the types whose subject port is
--     a service (scan, population, URL, sandbox, blocklist reports; the DDoS target's attacked port). Event
--     reports (event4_*, event6_*) name the subject by the port it connected FROM, which changes with every
--     connection: their key is the address alone;
--   * a row without one: the type's natural key (the compromised account's e-mail address, the ransomware
--     victim's name, the sandbox DNS sample and request);
--   * otherwise the row's own event_hash (each such row is its own finding).
--
-- The typed columns ip and port hold the subject (see the README, "What lands in the typed columns"), so
-- the function reads the same values from a stored row as from a row about to be stored.
CREATE OR REPLACE FUNCTION ss_finding_key(report_type TEXT, ip INET, port INTEGER, raw_data JSONB, event_hash TEXT)
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

-- A finding points at the events that first and last reported it by their unique key (report_type, the
-- first_seen/last_seen date, event_hash) instead of by id: a key the unique index serves (and, once
-- ss_events is partitioned by report date, one partition), where an id alone would not be.
ALTER TABLE ss_findings
  DROP COLUMN IF EXISTS first_event_id,
  DROP COLUMN IF EXISTS last_event_id,
  ADD COLUMN IF NOT EXISTS first_event_hash TEXT,
  ADD COLUMN IF NOT EXISTS last_event_hash TEXT;

-- Rebuild every finding from the stored events with that one definition (one pass over ss_events).
TRUNCATE ss_findings;
INSERT INTO ss_findings (report_type, finding_key, first_seen, last_seen, times_seen, first_event_hash,
                         last_event_hash)
SELECT report_type, finding_key, MIN(report_date), MAX(report_date), COUNT(*),
       (array_agg(event_hash ORDER BY report_date, event_hash))[1],
       (array_agg(event_hash ORDER BY report_date DESC, event_hash))[1]
FROM (SELECT report_type, report_date, event_hash, ss_finding_key(report_type, ip, port, raw_data, event_hash) AS finding_key
      FROM ss_events) keyed
GROUP BY report_type, finding_key;
