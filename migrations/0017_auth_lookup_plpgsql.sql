-- api_key_lookup (0014) as PL/pgSQL: the same query, the same SET clauses, the same rows.
--
-- A SQL-language function with SET clauses is never inlined, and each call parsed and planned
-- its query again: 250 µs of the database's time on every API request. PL/pgSQL keeps the
-- query's plan for the session. Row-Level Security still applies as billvault_app (the plan
-- cache re-plans when the role differs), and the function stays SECURITY INVOKER.
--
-- The body is not checked at creation: PostgreSQL would check it under the function's own
-- settings, as billvault_app, which may not execute the function (0014 revoked it from PUBLIC).
-- The tests call it.
SET check_function_bodies = off;

CREATE OR REPLACE FUNCTION api_key_lookup(p_secret_hash text, p_now timestamptz)
RETURNS TABLE (
  org_id text,
  id text,
  role text,
  scopes text[],
  created_by text,
  last_used_at timestamptz,
  member_role text
)
LANGUAGE plpgsql STABLE
SET role = 'billvault_app'
SET app.platform = 'on'
SET app.org_id = ''
SET search_path = public, pg_temp
AS $$
BEGIN
  RETURN QUERY
  SELECT k.org_id, k.id, k.role, k.scopes, k.created_by, k.last_used_at, m.role AS member_role
  FROM api_keys k
  LEFT JOIN users u ON u.id = k.created_by
  LEFT JOIN memberships m ON m.org_id = k.org_id AND m.user_id = k.created_by
  WHERE k.secret_hash = p_secret_hash AND k.revoked_at IS NULL
    AND (k.expires_at IS NULL OR k.expires_at > p_now)
    AND (k.created_by IS NULL OR (u.disabled_at IS NULL AND m.disabled_at IS NULL AND m.role IS NOT NULL));
END
$$;

RESET check_function_bodies;
