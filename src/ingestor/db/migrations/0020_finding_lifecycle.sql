-- The finding lifecycle and the daily rollup (docs/findings.md).
--
-- A finding is open while its type's reports carry it, resolved once it has been absent from N
-- consecutive FULL report days of its type (a day with no file of the type proves nothing; a delta day,
-- Shadowserver's opt-in mode where only Sunday's reports are whole, proves nothing either), and reopened
-- when it comes back. To stay exact whatever order files load in (late files, several workers), the
-- lifecycle is a function of two recorded histories, never of the order of arrival:
--
--   * ss_report_days: the report days each type was delivered (a file of it loaded), full or delta;
--   * ss_findings.seen_days: the days each finding was seen, as a bit string (bit 1 = first_seen,
--     the last bit = last_seen, always 1): a finding seen daily for a year takes 46 bytes.
--
-- The loader keeps state, resolved_at and reopen_count up to date from them (load.py, lifecycle.py) and
-- ss_rollup_daily with them; ss_finding_replay() is the one definition of what those histories mean, used
-- by the loader for late files, by this migration and by `rollup rebuild`.
--
-- Cost on a large database: one pass over ss_events (as migration 0004) to record the days every stored
-- finding was seen, one replay per finding, and the rollup of every stored event. ss_findings is rewritten
-- (new NOT NULL column); ss_events is only read.

-- The days of a finding as a bit string: bit 1 = first_seen, one bit per day up to the last of days.
CREATE OR REPLACE FUNCTION ss_days_bits(first_seen DATE, days DATE[])
RETURNS VARBIT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT string_agg(CASE WHEN d.day IS NULL THEN '0' ELSE '1' END, '' ORDER BY g.n)::varbit
  FROM generate_series(0, (SELECT max(x) FROM unnest(days) AS x) - first_seen) AS g(n)
  LEFT JOIN (SELECT DISTINCT x - first_seen FROM unnest(days) AS x) AS d(day) ON d.day = g.n
$$;

-- seen_days with one more day seen (before, inside or after the days it covers).
CREATE OR REPLACE FUNCTION ss_seen_day(seen VARBIT, first_seen DATE, day DATE)
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
CREATE OR REPLACE FUNCTION ss_nth_full_day(full_days DATE[], after DATE, n INTEGER)
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
CREATE OR REPLACE FUNCTION ss_finding_replay(seen VARBIT, first_seen DATE, full_days DATE[], resolve_after INTEGER,
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
CREATE OR REPLACE FUNCTION ss_rebuild_lifecycle(p_type TEXT, p_resolve_after INTEGER, p_delta BOOLEAN)
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

CREATE TABLE IF NOT EXISTS ss_report_days (
  report_type TEXT NOT NULL,
  report_date DATE NOT NULL,
  delta BOOLEAN NOT NULL,
  first_loaded_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  last_loaded_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  PRIMARY KEY (report_type, report_date));

-- What is known of the report days so far: v1.0.0's per type-and-day counter, the ledger's loaded files
-- and the days events are stored for (a v1.0.0 counter row can be missing: it was written after the rows).
-- Whether a day was a delta is configuration (SS_DELTA_TYPES) this SQL cannot read: every day is taken
-- as full; `rollup rebuild` applies the configuration.
INSERT INTO ss_report_days (report_type, report_date, delta)
SELECT report_type, report_date, false FROM ss_reports
UNION
SELECT report_type, report_date, false FROM ss_report_files WHERE status = 'loaded'
UNION
SELECT DISTINCT report_type, report_date, false FROM ss_events
ON CONFLICT DO NOTHING;

ALTER TABLE ss_findings
  ADD COLUMN IF NOT EXISTS seen_days VARBIT,
  ADD COLUMN IF NOT EXISTS state TEXT NOT NULL DEFAULT 'open',
  ADD COLUMN IF NOT EXISTS resolved_at DATE,
  ADD COLUMN IF NOT EXISTS reopen_count INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS severity TEXT NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS asn BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS geo TEXT NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS org_ids INTEGER[] NOT NULL DEFAULT '{}';

-- The days each stored finding was seen, and the severity, ASN and country of the row that first reported
-- it (the first stored row of its first day): a finding is counted in the rollup under those.
WITH keyed AS (
  SELECT report_type, ss_finding_key(report_type, ip, port, raw_data, event_hash) AS finding_key, report_date,
         id, severity, asn, geo
  FROM ss_events),
days AS (
  SELECT report_type, finding_key, array_agg(DISTINCT report_date) AS days,
         (array_agg(ARRAY[COALESCE(severity, ''), COALESCE(asn, 0)::text, COALESCE(geo, '')]
                    ORDER BY report_date, id))[1:1] AS first_row
  FROM keyed
  GROUP BY report_type, finding_key)
UPDATE ss_findings f
SET seen_days = ss_days_bits(f.first_seen, d.days),
    severity = d.first_row[1][1], asn = d.first_row[1][2]::bigint, geo = d.first_row[1][3]
FROM days d
WHERE f.report_type = d.report_type AND f.finding_key = d.finding_key;
-- Findings whose events are all gone (pruned) keep their first and last day.
UPDATE ss_findings
SET seen_days = CASE WHEN last_seen = first_seen THEN B'1'
                     ELSE ('1' || repeat('0', last_seen - first_seen - 1) || '1')::varbit END
WHERE seen_days IS NULL;
ALTER TABLE ss_findings ALTER COLUMN seen_days SET NOT NULL;
ALTER TABLE ss_findings ADD CONSTRAINT ss_findings_state CHECK (state IN ('open', 'resolved'));

-- Open findings of a type by last day seen: the ones a new full day may resolve (lifecycle.py), `findings
-- --state open`, the open-findings metrics.
CREATE INDEX IF NOT EXISTS idx_ss_findings_open ON ss_findings (report_type, last_seen) WHERE state = 'open';

-- One row per report date, type, severity, ASN, country and organisation: what trend questions read instead
-- of ss_events. severity '' and geo '' = none, asn 0 = unknown. org_id 0 counts every row whatever its
-- organisations; N > 0 counts again the rows of organisation N (so org 0 alone gives exact totals).
-- rows = stored events; subjects = distinct findings seen that day (each under its first row of the day);
-- new/resolved/reopened = lifecycle transitions dated that day (each under the finding's own attributes).
CREATE TABLE IF NOT EXISTS ss_rollup_daily (
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

-- The lifecycle of every stored finding and the rollup of every stored event, with the defaults: findings
-- resolve after 3 full days, no delta mode (`rollup rebuild` applies other settings).
SELECT ss_rebuild_lifecycle(report_type, 3, false)
FROM (SELECT DISTINCT report_type FROM ss_report_days UNION SELECT DISTINCT report_type FROM ss_findings) t
ORDER BY report_type;
