-- ss_events becomes a table partitioned by report_date (db/partitions.py makes the partitions, a month
-- each by default): indexes stay the size of a period, retention drops whole partitions instead of
-- deleting rows one by one. The primary key becomes (id, report_date), as a partitioned table's keys must
-- hold the partition column; ids still come from ss_events_id_seq, so they keep growing as before.
--
-- Here only an EMPTY ss_events is converted (a new database, or one never loaded): instantly. A table that
-- already holds events is converted by `shadowserver-ingestor events partition`, which copies them day by
-- day, can be interrupted and resumed, and reports its progress (see the README, "Partitions"); until then
-- everything works on the plain table as before.
DO $$
BEGIN
  IF (SELECT relkind FROM pg_class WHERE oid = 'ss_events'::regclass) = 'r'
     AND NOT EXISTS (SELECT 1 FROM ss_events) THEN
    ALTER SEQUENCE ss_events_id_seq OWNED BY NONE;
    DROP TABLE ss_events;
    CREATE TABLE ss_events (
      id BIGINT NOT NULL DEFAULT nextval('ss_events_id_seq'),
      report_type TEXT NOT NULL,
      report_date DATE NOT NULL,
      ip INET, port INTEGER, asn BIGINT,
      geo TEXT, hostname TEXT, tag TEXT, severity TEXT,
      raw_data JSONB NOT NULL,
      event_hash TEXT NOT NULL,
      ingested_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
      event_time TIMESTAMPTZ,
      file_id BIGINT,
      CONSTRAINT ss_events_pkey PRIMARY KEY (id, report_date)
    ) PARTITION BY RANGE (report_date);
    ALTER SEQUENCE ss_events_id_seq OWNED BY ss_events.id;
    CREATE UNIQUE INDEX ss_events_report_type_report_date_event_hash_key
      ON ss_events (report_date DESC NULLS LAST, report_type, event_hash);
    CREATE INDEX idx_ss_events_ip ON ss_events (ip);
    CREATE INDEX idx_ss_events_asn ON ss_events (asn);
    CREATE INDEX idx_ss_events_hostname ON ss_events (hostname);
  END IF;
END
$$;
