-- Key management: the envelope-encryption key hierarchy of DESIGN.md §5.
--
--   master key (outside the database: key file, BILLVAULT_MASTER_KEY or a KMS, behind KeyProvider)
--     └─ wraps key-encryption keys (KEKs): one versioned KEK per org, plus platform-level KEKs
--          └─ wrap data keys: one per org (org-level secrets), one per subject (a customer, a user)
--             so a subject can be crypto-shredded, and one blind-index root key per org.
--
-- Only wrapped key material is stored here. A destroyed key keeps its row (for the record and
-- for references) but loses its wrapped bytes, so whatever it encrypted is unreadable for good.
-- Status: active (encrypts), decrypt_only (retired, still decrypts until re-encryption is done),
-- destroyed.

-- Per-org KEKs follow THE RLS PATTERN of 0001.
CREATE TABLE org_key_versions (
  org_id text NOT NULL REFERENCES orgs (id),
  version integer NOT NULL CHECK (version >= 1),
  status text NOT NULL CHECK (status IN ('active', 'decrypt_only', 'destroyed')),
  master_key_id text NOT NULL CHECK (length(master_key_id) BETWEEN 1 AND 200),
  wrapped_key bytea,
  created_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz,
  destroyed_at timestamptz,
  PRIMARY KEY (org_id, version),
  CHECK ((status = 'destroyed') = (wrapped_key IS NULL))
);
CREATE UNIQUE INDEX org_key_versions_one_active ON org_key_versions (org_id) WHERE status = 'active';
ALTER TABLE org_key_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_key_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON org_key_versions
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE ON org_key_versions TO billvault_app;

CREATE TABLE org_data_keys (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^dk_[0-9a-z]{32}$'),
  purpose text NOT NULL CHECK (purpose IN ('data', 'blind_index')),
  subject_type text NOT NULL CHECK (subject_type IN ('org', 'customer', 'user')),
  subject_id text NOT NULL CHECK (length(subject_id) BETWEEN 1 AND 100),
  kek_version integer NOT NULL,
  status text NOT NULL CHECK (status IN ('active', 'decrypt_only', 'destroyed')),
  wrapped_key bytea,
  -- Encryptions reserved under this key (in blocks), for the AES-GCM random-nonce limit.
  usage_count bigint NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz,
  destroyed_at timestamptz,
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, kek_version) REFERENCES org_key_versions (org_id, version),
  CHECK ((status = 'destroyed') = (wrapped_key IS NULL))
);
CREATE UNIQUE INDEX org_data_keys_one_active ON org_data_keys (org_id, purpose, subject_type, subject_id)
  WHERE status = 'active';
CREATE INDEX org_data_keys_subject ON org_data_keys (org_id, subject_type, subject_id);
CREATE INDEX org_data_keys_kek ON org_data_keys (org_id, kek_version);
ALTER TABLE org_data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_data_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON org_data_keys
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE ON org_data_keys TO billvault_app;

-- Platform-level keys (secrets that belong to no org, e.g. a user's TOTP secret: users span
-- orgs). No org_id, so no RLS; the application role may read and add them but never delete.
CREATE TABLE platform_key_versions (
  version integer PRIMARY KEY CHECK (version >= 1),
  status text NOT NULL CHECK (status IN ('active', 'decrypt_only', 'destroyed')),
  master_key_id text NOT NULL CHECK (length(master_key_id) BETWEEN 1 AND 200),
  wrapped_key bytea,
  created_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz,
  destroyed_at timestamptz,
  CHECK ((status = 'destroyed') = (wrapped_key IS NULL))
);
CREATE UNIQUE INDEX platform_key_versions_one_active ON platform_key_versions ((true)) WHERE status = 'active';
GRANT SELECT, INSERT, UPDATE ON platform_key_versions TO billvault_app;

CREATE TABLE platform_data_keys (
  id text PRIMARY KEY CHECK (id ~ '^dk_[0-9a-z]{32}$'),
  purpose text NOT NULL CHECK (purpose IN ('data', 'blind_index')),
  subject_type text NOT NULL CHECK (subject_type IN ('platform', 'customer', 'user')),
  subject_id text NOT NULL CHECK (length(subject_id) BETWEEN 1 AND 100),
  kek_version integer NOT NULL REFERENCES platform_key_versions (version),
  status text NOT NULL CHECK (status IN ('active', 'decrypt_only', 'destroyed')),
  wrapped_key bytea,
  usage_count bigint NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz,
  destroyed_at timestamptz,
  CHECK ((status = 'destroyed') = (wrapped_key IS NULL))
);
CREATE UNIQUE INDEX platform_data_keys_one_active ON platform_data_keys (purpose, subject_type, subject_id)
  WHERE status = 'active';
CREATE INDEX platform_data_keys_kek ON platform_data_keys (kek_version);
GRANT SELECT, INSERT, UPDATE ON platform_data_keys TO billvault_app;

-- The org's own contacts (billing, privacy/DPO, security): the first table with encrypted PII.
-- name and email are field-encrypted (bv1:… ciphertexts, AAD-bound to org, table, column and
-- row); email_bidx is the keyed blind index for exact-match lookup by email.
CREATE TABLE org_contacts (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^ctc_[0-9a-z]{32}$'),
  kind text NOT NULL CHECK (kind IN ('billing', 'privacy', 'security')),
  name_enc text NOT NULL CHECK (name_enc LIKE 'bv1:%'),
  email_enc text CHECK (email_enc LIKE 'bv1:%'),
  email_bidx text CHECK (email_bidx ~ '^[0-9a-f]{32}$'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, id)
);
CREATE INDEX org_contacts_email ON org_contacts (org_id, email_bidx);
ALTER TABLE org_contacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_contacts FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON org_contacts
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON org_contacts TO billvault_app;
