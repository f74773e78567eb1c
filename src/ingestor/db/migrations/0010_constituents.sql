-- Constituents (issue 13): the organisations a CERT serves, their abuse contacts and networks, every
-- event's owners, and the delivery log of the notification digests. See docs/constituents.md and
-- docs/notifications.md.
--
-- Cost on a large ss_events: ADD COLUMN without a default is a catalog change only (no rewrite); the
-- existing events stay unmatched (NULL) until `orgs rematch`.

-- An event's organisations, computed by the loader before the COPY (no extra write), NULL = no owner.
ALTER TABLE ss_events ADD COLUMN org_ids INTEGER[];

CREATE TABLE ss_orgs (
  id SERIAL PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  source TEXT NOT NULL DEFAULT 'manual',
  handle TEXT UNIQUE,
  country TEXT,
  language TEXT,
  tags TEXT[] NOT NULL DEFAULT '{}',
  notify_enabled BOOLEAN NOT NULL DEFAULT true,
  notify_interval_hours INTEGER NOT NULL DEFAULT 24,
  notify_types TEXT[],
  notify_min_severity TEXT,
  notify_mode TEXT NOT NULL DEFAULT 'new',
  notify_format TEXT NOT NULL DEFAULT 'html',
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  CONSTRAINT ss_orgs_source CHECK (source IN ('manual', 'ripe')),
  CONSTRAINT ss_orgs_notify_mode CHECK (notify_mode IN ('new', 'all')),
  CONSTRAINT ss_orgs_notify_format CHECK (notify_format IN ('html', 'text')),
  CONSTRAINT ss_orgs_notify_interval CHECK (notify_interval_hours BETWEEN 1 AND 8784));

CREATE TABLE ss_org_contacts (
  org_id INTEGER NOT NULL REFERENCES ss_orgs (id) ON DELETE CASCADE,
  email TEXT NOT NULL,
  PRIMARY KEY (org_id, email));

-- One row per network: exactly one of cidr, asn, domain is set.
CREATE TABLE ss_org_networks (
  id BIGSERIAL PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES ss_orgs (id) ON DELETE CASCADE,
  cidr CIDR,
  asn BIGINT,
  domain TEXT,
  CONSTRAINT ss_org_networks_one CHECK (num_nonnulls(cidr, asn, domain) = 1));
CREATE INDEX idx_ss_org_networks_org_id ON ss_org_networks (org_id);

-- The constituents' version: a new token on every change, so loaders rebuild their matcher only then.
CREATE TABLE ss_org_state (
  singleton BOOLEAN PRIMARY KEY DEFAULT true,
  token TEXT NOT NULL,
  changed_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  CONSTRAINT ss_org_state_singleton CHECK (singleton));
INSERT INTO ss_org_state (token) VALUES (gen_random_uuid()::text);

-- The delivery log of notification digests: one row per digest, written before and after sending.
CREATE TABLE ss_notifications (
  id BIGSERIAL PRIMARY KEY,
  org_id INTEGER REFERENCES ss_orgs (id) ON DELETE SET NULL,
  org_name TEXT NOT NULL,
  ticket TEXT NOT NULL UNIQUE,
  message_id TEXT NOT NULL UNIQUE,
  recipients TEXT[] NOT NULL,
  window_start DATE,
  window_end DATE,
  events INTEGER NOT NULL DEFAULT 0,
  findings INTEGER NOT NULL DEFAULT 0,
  suppressed INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'prepared',
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  message BYTEA,
  prepared_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  attempt_started_at TIMESTAMPTZ,
  sent_at TIMESTAMPTZ,
  CONSTRAINT ss_notifications_status CHECK (status IN ('prepared', 'sent', 'failed')));
CREATE INDEX idx_ss_notifications_org_id ON ss_notifications (org_id, prepared_at);
CREATE INDEX idx_ss_notifications_pending ON ss_notifications (status) WHERE status <> 'sent';

-- Which loaded files a digest covered for its organisation: a file's events are in one digest per org
-- (no digest when all of them were filtered out or suppressed).
CREATE TABLE ss_notification_files (
  org_id INTEGER NOT NULL,
  file_id BIGINT NOT NULL,
  notification_id BIGINT REFERENCES ss_notifications (id) ON DELETE CASCADE,
  PRIMARY KEY (org_id, file_id));
CREATE INDEX idx_ss_notification_files_notification_id ON ss_notification_files (notification_id);

-- When each finding was last sent to each organisation: the suppression window.
CREATE TABLE ss_notified_findings (
  org_id INTEGER NOT NULL,
  report_type TEXT NOT NULL,
  finding_key TEXT NOT NULL,
  last_sent_at TIMESTAMPTZ NOT NULL,
  notification_id BIGINT REFERENCES ss_notifications (id) ON DELETE SET NULL,
  PRIMARY KEY (org_id, report_type, finding_key));
