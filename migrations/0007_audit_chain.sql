-- The tamper-evident audit chain (DESIGN.md §5 Audit trail).
--
-- Writers append audit_events in their own business transactions with a content hash (SHA-256
-- over a canonical encoding, computed by the application) and never touch a chain head. A
-- sealer (src/app/audit-chain.ts) later links committed events into one chain per org, plus
-- a "platform" chain for events without an org: audit_chain rows carry the sequence number,
-- the event's content hash, the previous chain hash and the chain hash. Signed checkpoints
-- (Ed25519) of chain heads go to audit_checkpoints and can be exported outside the database.
-- Every table here is insert-only: the application role may INSERT and SELECT, and triggers
-- refuse UPDATE, DELETE and TRUNCATE even for the owner.

-- Content hash written by recordAudit (null for events written before this migration: the
-- sealer hashes those from the row). txid: the writing transaction, so the sealer can find
-- events committed since its last pass without scanning the whole table.
ALTER TABLE audit_events ADD COLUMN content_hash text CHECK (content_hash ~ '^[0-9a-f]{64}$');
ALTER TABLE audit_events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX audit_events_org_txid ON audit_events (org_id, txid);

-- The sealer of the platform chain reads org-less events (it sets app.audit_scope).
CREATE POLICY audit_read_platform ON audit_events FOR SELECT
  USING (org_id IS NULL AND current_setting('app.audit_scope', true) = 'platform');

CREATE FUNCTION audit_chain_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TABLE audit_chain (
  -- The org id, or 'platform' for org-less events.
  chain_id text NOT NULL CHECK (chain_id = coalesce(org_id, 'platform')),
  org_id text REFERENCES orgs (id),
  seq bigint NOT NULL CHECK (seq >= 1),
  event_id text NOT NULL CHECK (event_id ~ '^evt_[0-9a-z]{32}$'),
  content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
  prev_hash text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  chain_hash text NOT NULL CHECK (chain_hash ~ '^[0-9a-f]{64}$'),
  sealed_at timestamptz NOT NULL,
  PRIMARY KEY (chain_id, seq),
  UNIQUE (event_id)
);
ALTER TABLE audit_chain ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON audit_chain
  USING (org_id = current_setting('app.org_id', true)
         OR (org_id IS NULL AND current_setting('app.audit_scope', true) = 'platform'))
  WITH CHECK (org_id = current_setting('app.org_id', true)
         OR (org_id IS NULL AND current_setting('app.audit_scope', true) = 'platform'));
GRANT SELECT, INSERT ON audit_chain TO billvault_app;
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE OR DELETE ON audit_chain
  FOR EACH ROW EXECUTE FUNCTION audit_chain_immutable();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
  FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_immutable();

-- Ed25519 checkpoint signing keys: the 32-byte seed wrapped by the master key (KeyProvider),
-- the public key in clear. Platform-level (no org), so no RLS.
CREATE TABLE audit_signing_keys (
  id text PRIMARY KEY CHECK (id ~ '^ask_[0-9a-f]{16}$'),
  status text NOT NULL CHECK (status IN ('active', 'retired')),
  public_key text NOT NULL CHECK (length(public_key) = 44),
  master_key_id text NOT NULL CHECK (length(master_key_id) BETWEEN 1 AND 200),
  wrapped_seed bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX audit_signing_keys_one_active ON audit_signing_keys ((true)) WHERE status = 'active';
GRANT SELECT, INSERT ON audit_signing_keys TO billvault_app;

CREATE TABLE audit_checkpoints (
  chain_id text NOT NULL CHECK (chain_id = coalesce(org_id, 'platform')),
  org_id text REFERENCES orgs (id),
  seq bigint NOT NULL CHECK (seq >= 1),
  chain_hash text NOT NULL CHECK (chain_hash ~ '^[0-9a-f]{64}$'),
  signed_at timestamptz NOT NULL,
  key_id text NOT NULL REFERENCES audit_signing_keys (id),
  signature text NOT NULL CHECK (length(signature) = 88),
  PRIMARY KEY (chain_id, seq)
);
ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON audit_checkpoints
  USING (org_id = current_setting('app.org_id', true)
         OR (org_id IS NULL AND current_setting('app.audit_scope', true) = 'platform'))
  WITH CHECK (org_id = current_setting('app.org_id', true)
         OR (org_id IS NULL AND current_setting('app.audit_scope', true) = 'platform'));
GRANT SELECT, INSERT ON audit_checkpoints TO billvault_app;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_chain_immutable();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_immutable();
CREATE TRIGGER audit_signing_keys_no_delete BEFORE DELETE ON audit_signing_keys
  FOR EACH ROW EXECUTE FUNCTION audit_chain_immutable();
CREATE TRIGGER audit_signing_keys_no_truncate BEFORE TRUNCATE ON audit_signing_keys
  FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_immutable();
