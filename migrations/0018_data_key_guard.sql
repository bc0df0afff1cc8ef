-- The field cipher's data-key check as an expression, evaluated by the statement that writes the
-- ciphertext (one round trip less on every finalisation; see FieldCipher.encryptForStatement).
--
-- It does what the cipher's own check (a SELECT … FOR KEY SHARE before encrypting) does: the key
-- is share-locked to the end of the transaction, so a retirement (which takes the active keys
-- FOR UPDATE and waits for their writers) cannot pass while the ciphertext is uncommitted, and
-- the key must still be active. A retirement that committed since the application cached the key,
-- or one in progress (this waits for it, then sees the retired row), fails the statement with
-- SQLSTATE BVK01: nothing of the transaction is written, and the application retries it in a new
-- transaction under a fresh key.
CREATE FUNCTION billvault_data_key_guard(p_org_id text, p_key_id text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = public, pg_temp
AS $$
BEGIN
  PERFORM 1 FROM org_data_keys
    WHERE org_id = p_org_id AND id = p_key_id AND status = 'active'
    FOR KEY SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'data key % is no longer active', p_key_id USING ERRCODE = 'BVK01';
  END IF;
  RETURN true;
END
$$;
