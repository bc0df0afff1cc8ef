-- API-key authentication in one round trip. The lookup runs on every API request; as a
-- transaction (BEGIN, role and settings, SELECT, COMMIT) it took four round trips. This
-- function does the same SELECT as the application role with the platform scope on, through
-- its own SET clauses, which PostgreSQL applies for the call only and undoes on return. It is
-- SECURITY INVOKER: the caller must be allowed to become billvault_app (the connecting role
-- is, see 0001), and Row-Level Security applies exactly as in the transaction it replaces.
-- It only reads; writing last_used_at stays a transaction of its own (at most once a minute).
CREATE FUNCTION api_key_lookup(p_secret_hash text, p_now timestamptz)
RETURNS TABLE (
  org_id text,
  id text,
  role text,
  scopes text[],
  created_by text,
  last_used_at timestamptz,
  member_role text
)
LANGUAGE sql STABLE
SET role = 'billvault_app'
SET app.platform = 'on'
SET app.org_id = ''
SET search_path = public, pg_temp
AS $$
  SELECT k.org_id, k.id, k.role, k.scopes, k.created_by, k.last_used_at, m.role AS member_role
  FROM api_keys k
  LEFT JOIN users u ON u.id = k.created_by
  LEFT JOIN memberships m ON m.org_id = k.org_id AND m.user_id = k.created_by
  WHERE k.secret_hash = p_secret_hash AND k.revoked_at IS NULL
    AND (k.expires_at IS NULL OR k.expires_at > p_now)
    AND (k.created_by IS NULL OR (u.disabled_at IS NULL AND m.disabled_at IS NULL AND m.role IS NOT NULL))
$$;
REVOKE ALL ON FUNCTION api_key_lookup(text, timestamptz) FROM PUBLIC;
