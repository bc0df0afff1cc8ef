-- Identity and access control: users (platform level), memberships (org-scoped), sessions,
-- API keys, MFA (TOTP, recovery codes, passkeys), invitations, password resets, login
-- throttling, break-glass grants and the notification outbox.
--
-- Two kinds of table:
--   * org-scoped (memberships, sessions, api_keys, invitations, break_glass_grants): THE RLS
--     PATTERN of 0001 (org_id leads every key; policy org_isolation).
--   * platform-level (users and the per-user credential tables): a user spans orgs. Their
--     policy shows a row only (a) inside an authentication transaction that set
--     app.platform = 'on' (login by email has no org yet), or (b) when the user is a member of
--     the transaction's org. A forgetful query in an ordinary org transaction therefore sees
--     that org's users only, and never their credentials (those tables need (a)).
-- The application role gets only the verbs it needs; nothing here can be deleted by it except
-- spent challenges and recovery codes.

CREATE TABLE users (
  id text PRIMARY KEY CHECK (id ~ '^usr_[0-9a-z]{32}$'),
  email text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
  password_hash text,
  password_changed_at timestamptz,
  failed_logins integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
  locked_until timestamptz,
  disabled_at timestamptz,
  -- TOTP secret: FieldCipher ciphertext (scope: this user), never plaintext.
  totp_secret_enc text,
  totp_enabled_at timestamptz,
  totp_last_step bigint,
  webauthn_user_handle bytea NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE memberships (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^mem_[0-9a-z]{32}$'),
  user_id text NOT NULL REFERENCES users (id),
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'finance_manager', 'accountant', 'sales_rep', 'viewer', 'auditor')),
  disabled_at timestamptz,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (org_id, id),
  UNIQUE (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON memberships
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
CREATE POLICY platform_auth ON memberships FOR SELECT
  USING (current_setting('app.platform', true) = 'on');
GRANT SELECT, INSERT, UPDATE (role, disabled_at, updated_at) ON memberships TO billvault_app;

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_auth ON users
  USING (current_setting('app.platform', true) = 'on')
  WITH CHECK (current_setting('app.platform', true) = 'on');
CREATE POLICY org_members ON users FOR SELECT
  USING (EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = users.id
                 AND m.org_id = current_setting('app.org_id', true)));
GRANT SELECT, INSERT ON users TO billvault_app;
GRANT UPDATE (email, password_hash, password_changed_at, failed_logins, locked_until, disabled_at,
              totp_secret_enc, totp_enabled_at, totp_last_step, updated_at) ON users TO billvault_app;

-- The platform policy for the per-user credential tables.
CREATE TABLE recovery_codes (
  user_id text NOT NULL REFERENCES users (id),
  id text NOT NULL,
  code_hash text NOT NULL,
  used_at timestamptz,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (user_id, id)
);
ALTER TABLE recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE recovery_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_auth ON recovery_codes
  USING (current_setting('app.platform', true) = 'on')
  WITH CHECK (current_setting('app.platform', true) = 'on');
GRANT SELECT, INSERT, DELETE ON recovery_codes TO billvault_app;
GRANT UPDATE (used_at) ON recovery_codes TO billvault_app;

CREATE TABLE webauthn_credentials (
  user_id text NOT NULL REFERENCES users (id),
  id text NOT NULL CHECK (length(id) BETWEEN 16 AND 1400),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  public_key bytea NOT NULL,
  counter bigint NOT NULL DEFAULT 0,
  transports text[] NOT NULL DEFAULT '{}',
  aaguid text,
  created_at timestamptz NOT NULL,
  last_used_at timestamptz,
  PRIMARY KEY (user_id, id)
);
CREATE UNIQUE INDEX webauthn_credentials_id ON webauthn_credentials (id);
ALTER TABLE webauthn_credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE webauthn_credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_auth ON webauthn_credentials
  USING (current_setting('app.platform', true) = 'on')
  WITH CHECK (current_setting('app.platform', true) = 'on');
GRANT SELECT, INSERT, DELETE ON webauthn_credentials TO billvault_app;
GRANT UPDATE (counter, last_used_at) ON webauthn_credentials TO billvault_app;

-- Single-use, expiring challenges: the MFA step of a login, WebAuthn ceremonies, password resets.
CREATE TABLE auth_challenges (
  id text PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('mfa', 'webauthn_register', 'webauthn_login', 'password_reset')),
  user_id text REFERENCES users (id),
  org_id text REFERENCES orgs (id),
  secret_hash text NOT NULL,
  challenge text,
  attempts integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at timestamptz
);
CREATE UNIQUE INDEX auth_challenges_secret ON auth_challenges (secret_hash);
ALTER TABLE auth_challenges ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth_challenges FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_auth ON auth_challenges
  USING (current_setting('app.platform', true) = 'on')
  WITH CHECK (current_setting('app.platform', true) = 'on');
GRANT SELECT, INSERT, DELETE ON auth_challenges TO billvault_app;
GRANT UPDATE (attempts, used_at) ON auth_challenges TO billvault_app;

-- Per-IP failure windows (key 'ip:<address>').
CREATE TABLE auth_throttle (
  key text PRIMARY KEY CHECK (length(key) <= 100),
  failures integer NOT NULL,
  window_started_at timestamptz NOT NULL
);
ALTER TABLE auth_throttle ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth_throttle FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_auth ON auth_throttle
  USING (current_setting('app.platform', true) = 'on')
  WITH CHECK (current_setting('app.platform', true) = 'on');
GRANT SELECT, INSERT, UPDATE, DELETE ON auth_throttle TO billvault_app;

CREATE TABLE sessions (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^ses_[0-9a-z]{32}$'),
  user_id text NOT NULL REFERENCES users (id),
  token_hash text NOT NULL,
  created_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  authenticated_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  idle_seconds integer NOT NULL CHECK (idle_seconds > 0),
  mfa boolean NOT NULL,
  restricted boolean NOT NULL DEFAULT false,
  ip text,
  user_agent text,
  revoked_at timestamptz,
  revoked_reason text,
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id)
);
CREATE UNIQUE INDEX sessions_token ON sessions (token_hash);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON sessions
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
CREATE POLICY platform_auth ON sessions
  USING (current_setting('app.platform', true) = 'on')
  WITH CHECK (current_setting('app.platform', true) = 'on');
GRANT SELECT, INSERT ON sessions TO billvault_app;
GRANT UPDATE (last_seen_at, authenticated_at, mfa, restricted, revoked_at, revoked_reason) ON sessions TO billvault_app;

CREATE TABLE api_keys (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL CHECK (id ~ '^key_[0-9a-z]{32}$'),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  secret_hash text NOT NULL,
  secret_hint text NOT NULL,
  role text NOT NULL,
  scopes text[],
  created_by text REFERENCES users (id),
  created_at timestamptz NOT NULL,
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX api_keys_secret ON api_keys (secret_hash);
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON api_keys
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
CREATE POLICY platform_auth ON api_keys
  USING (current_setting('app.platform', true) = 'on')
  WITH CHECK (current_setting('app.platform', true) = 'on');
GRANT SELECT, INSERT ON api_keys TO billvault_app;
GRANT UPDATE (last_used_at, revoked_at) ON api_keys TO billvault_app;

CREATE TABLE invitations (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL,
  email text NOT NULL CHECK (email = lower(email)),
  role text NOT NULL,
  token_hash text NOT NULL,
  invited_by text REFERENCES users (id),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  accepted_at timestamptz,
  revoked_at timestamptz,
  PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX invitations_token ON invitations (token_hash);
ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON invitations
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
CREATE POLICY platform_auth ON invitations
  USING (current_setting('app.platform', true) = 'on')
  WITH CHECK (current_setting('app.platform', true) = 'on');
GRANT SELECT, INSERT ON invitations TO billvault_app;
GRANT UPDATE (accepted_at, revoked_at) ON invitations TO billvault_app;

CREATE TABLE break_glass_grants (
  org_id text NOT NULL REFERENCES orgs (id),
  id text NOT NULL,
  user_id text NOT NULL,
  role text NOT NULL,
  reason text NOT NULL CHECK (length(reason) BETWEEN 10 AND 1000),
  granted_by text,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL CHECK (expires_at <= created_at + interval '4 hours'),
  revoked_at timestamptz,
  PRIMARY KEY (org_id, id),
  FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id)
);
ALTER TABLE break_glass_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE break_glass_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON break_glass_grants
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
CREATE POLICY platform_auth ON break_glass_grants FOR SELECT
  USING (current_setting('app.platform', true) = 'on');
GRANT SELECT, INSERT ON break_glass_grants TO billvault_app;
GRANT UPDATE (revoked_at) ON break_glass_grants TO billvault_app;

-- Notices to send (credential changes, invitations, resets); a mailer drains it later.
CREATE TABLE outbox (
  id text PRIMARY KEY,
  org_id text REFERENCES orgs (id),
  user_id text REFERENCES users (id),
  kind text NOT NULL CHECK (kind ~ '^[a-z_]+(\.[a-z_]+)*$'),
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL,
  sent_at timestamptz
);
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_auth ON outbox
  USING (current_setting('app.platform', true) = 'on')
  WITH CHECK (current_setting('app.platform', true) = 'on');
CREATE POLICY org_isolation ON outbox
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
GRANT SELECT, INSERT ON outbox TO billvault_app;
GRANT UPDATE (sent_at) ON outbox TO billvault_app;
