-- What `masq migrate` ran for schema version 2 (lib/sink/schema.ts at e52900b), role prefix __PREFIX__: the
-- starting point of migrate_test's upgrade test.
BEGIN;
SELECT pg_advisory_xact_lock(1835103089);

CREATE TABLE IF NOT EXISTS user_logins(
  user_id varchar(128), device_type varchar(32), masked_ip varchar(256),
  masked_device_id varchar(256), locale varchar(32), app_version integer, create_date date);

-- forget finds a person's rows without a full scan.
CREATE INDEX IF NOT EXISTS user_logins_user_id ON user_logins (user_id);

CREATE TABLE IF NOT EXISTS user_logins_rejected(
  message_id text PRIMARY KEY, reason text, body_redacted text, rejected_at timestamptz);

CREATE TABLE IF NOT EXISTS user_logins_ledger(
  message_id text PRIMARY KEY,
  outcome text NOT NULL CHECK (outcome IN ('inserted', 'rejected')),
  written_at timestamptz NOT NULL DEFAULT now());

CREATE TABLE IF NOT EXISTS pii_vault(
  field text NOT NULL CHECK (field IN ('ip', 'device_id')), token text NOT NULL, ciphertext bytea NOT NULL,
  key_id text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (field, token));
CREATE INDEX IF NOT EXISTS pii_vault_key_id ON pii_vault (key_id);

CREATE TABLE IF NOT EXISTS pii_access_log(
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  db_role text NOT NULL DEFAULT current_user,
  session_role text NOT NULL DEFAULT session_user,
  os_user text,
  action text NOT NULL CHECK (action IN ('recover', 'forget_token', 'forget_user', 'rekey', 'redrive')),
  field text, token text, user_id text, message_id text,
  reason text NOT NULL CHECK (length(btrim(reason)) > 0),
  outcome text NOT NULL);

CREATE TABLE IF NOT EXISTS pii_keys(
  id text PRIMARY KEY, first_used timestamptz NOT NULL, last_used timestamptz NOT NULL);

CREATE OR REPLACE FUNCTION app_version_text(v integer) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
  $$ SELECT (v / 1000000)::text || '.' || (v / 1000 % 1000)::text || '.' || (v % 1000)::text $$;

CREATE OR REPLACE VIEW user_logins_readable AS
  SELECT user_id, device_type, masked_ip, masked_device_id, locale,
         app_version_text(app_version) AS app_version, create_date
  FROM user_logins;

CREATE TABLE IF NOT EXISTS masq_schema_version(
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  version integer NOT NULL, role_prefix text NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now());


DO $$
DECLARE idx text;
BEGIN
  FOREACH idx IN ARRAY ARRAY['user_logins_masked_ip', 'user_logins_masked_device_id'] LOOP
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_am a ON a.oid = c.relam
               WHERE c.oid = to_regclass(idx) AND a.amname <> 'hash') THEN
      EXECUTE format('DROP INDEX %I', idx);
    END IF;
  END LOOP;
END $$;
CREATE INDEX IF NOT EXISTS user_logins_masked_ip ON user_logins USING hash (masked_ip);
CREATE INDEX IF NOT EXISTS user_logins_masked_device_id ON user_logins USING hash (masked_device_id);


DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '__PREFIX__writer') THEN CREATE ROLE __PREFIX__writer NOLOGIN; END IF;
END $$;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '__PREFIX__analyst') THEN CREATE ROLE __PREFIX__analyst NOLOGIN; END IF;
END $$;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '__PREFIX__privacy_officer') THEN CREATE ROLE __PREFIX__privacy_officer NOLOGIN; END IF;
END $$;
DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO __PREFIX__writer, __PREFIX__analyst, __PREFIX__privacy_officer', current_schema()); END $$;
REVOKE ALL ON user_logins, user_logins_rejected, user_logins_ledger, pii_vault, pii_access_log, pii_keys, masq_schema_version, user_logins_readable FROM PUBLIC, __PREFIX__writer, __PREFIX__analyst, __PREFIX__privacy_officer;
REVOKE ALL ON FUNCTION app_version_text(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_version_text(integer) TO __PREFIX__writer, __PREFIX__analyst, __PREFIX__privacy_officer;
GRANT SELECT ON masq_schema_version TO __PREFIX__writer, __PREFIX__analyst, __PREFIX__privacy_officer;

GRANT INSERT ON user_logins, user_logins_rejected, user_logins_ledger, pii_vault TO __PREFIX__writer;
-- The batch statement returns the message ids it newly recorded (RETURNING needs SELECT), and ON CONFLICT
-- needs SELECT on its conflict columns: ids and tokens only, never the vault's ciphertext or a body.
GRANT SELECT ON user_logins_ledger TO __PREFIX__writer;
GRANT SELECT (message_id) ON user_logins_rejected TO __PREFIX__writer;
GRANT SELECT (field, token) ON pii_vault TO __PREFIX__writer;
GRANT SELECT, INSERT, UPDATE ON pii_keys TO __PREFIX__writer;

GRANT SELECT ON user_logins_readable TO __PREFIX__analyst;

GRANT SELECT, UPDATE, DELETE ON user_logins TO __PREFIX__privacy_officer;
GRANT SELECT, DELETE ON user_logins_rejected TO __PREFIX__privacy_officer;
GRANT SELECT, INSERT, DELETE ON pii_vault TO __PREFIX__privacy_officer;
GRANT SELECT, INSERT ON pii_access_log TO __PREFIX__privacy_officer;
GRANT SELECT, INSERT, UPDATE ON pii_keys TO __PREFIX__privacy_officer;
GRANT SELECT ON user_logins_readable TO __PREFIX__privacy_officer;

INSERT INTO masq_schema_version (version, role_prefix) VALUES (2, '__PREFIX__')
  ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version, role_prefix = EXCLUDED.role_prefix,
  migrated_at = now();
COMMIT;