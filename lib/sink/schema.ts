/**
 * masq's schema and roles, versioned. `masq migrate` is the only code path that runs DDL: it creates the
 * tables, the functions, the view and three group roles, and records the version. Every other command
 * checks the version (no DDL) and stops with exit 2 naming `migrate` when the schema is missing or older.
 *
 * Roles (NOLOGIN groups; grant them to login users):
 * - `<prefix>writer`: `masq run`. Inserts into the pipeline tables and the vault, records its key id;
 *   reads nothing personal (no SELECT on user_logins or the vault's ciphertext, no UPDATE or DELETE of rows).
 * - `<prefix>analyst`: SELECT on `user_logins_readable` only.
 * - `<prefix>privacy_officer`: recover, forget, rekey, redrive. It reads originals only through the
 *   SECURITY DEFINER functions below, which put the read on record first; it may delete rows (forget) and
 *   change only the two token columns of user_logins (rekey).
 *
 * The audit trail: nobody but the owner (the role that ran migrate) may SELECT `pii_vault.ciphertext`.
 * `masq_recover_request()` / `masq_rekey_request()` append the access-log lines, which the caller commits;
 * `masq_recover()` / `masq_rekey_batch()` then hand out ciphertexts only against such lines, committed by
 * an earlier transaction of the same session user and role within the last few minutes, so a caller that
 * rolls back or errors after reading cannot take the line back with it. `pii_access_log` is append-only for
 * everyone but its owner, and a trigger stamps each line's time and roles itself.
 *
 * Version 4, the sealed vault (lib/seal.ts): a vault entry is sealed to its subject's key, so one value has
 * an entry per (field, token, subject_key_id); the writer loses SELECT on the vault's tokens (it writes with
 * ON CONFLICT DO NOTHING, which needs none); the key store `masq_subject_keys` (KEYSTORE_SQL) lives in
 * PII_KEYSTORE_URL's database, by default this one.
 *
 * Roles are cluster-wide while grants are per schema, hence the prefix (tests use one per schema).
 *
 * @module
 */
import { ConfigError, errorMessage } from "../errors.ts";
import { type WriterLogin, writerLoginSql } from "./login.ts";

/** The schema version this masq writes and expects. */
export const SCHEMA_VERSION = 4;

/** The default role-name prefix. */
export const DEFAULT_ROLE_PREFIX = "masq_";

/** The three role names for a prefix. */
export interface Roles {
  writer: string;
  analyst: string;
  privacyOfficer: string;
}

/** Anything that runs SQL: a pg Pool or Client. */
export interface Queryable {
  // deno-lint-ignore no-explicit-any
  query(sql: string, params?: unknown[]): Promise<{ rows: any[] }>;
}

/**
 * The role names for `prefix`, which must be a lowercase identifier fragment (it is spliced into DDL).
 */
export function roleNames(prefix: string = DEFAULT_ROLE_PREFIX): Roles {
  if (!/^[a-z_][a-z0-9_]{0,39}$/.test(prefix)) {
    throw new ConfigError(
      "--role-prefix",
      "is not a lowercase identifier prefix (a-z, 0-9, _; at most 40 characters)",
    );
  }
  return {
    writer: `${prefix}writer`,
    analyst: `${prefix}analyst`,
    privacyOfficer: `${prefix}privacy_officer`,
  };
}

/** The tables, function and view; `user_logins` is exactly the contract's table. */
export const SCHEMA_SQL = `
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
-- masq_recover() looks for the caller's recent line of each token; auditors ask who looked at a token.
CREATE INDEX IF NOT EXISTS pii_access_log_token ON pii_access_log (token, at);

-- What each rekey request (its pii_access_log line) lets one masq_rekey_batch() read; owner only.
CREATE TABLE IF NOT EXISTS pii_rekey_requests(
  log_id bigint PRIMARY KEY, new_key_id text NOT NULL, from_key_id text,
  batch_limit integer NOT NULL CHECK (batch_limit BETWEEN 1 AND 10000));

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
`;

/** How long a committed request line lets its caller fetch what it names. */
export const REQUEST_WINDOW = "5 minutes";

/**
 * The statement of a batch function that uses up its request: committed, unused, of this session user and
 * role, from the window. One copy of the rule for rekey and convert alike.
 */
function takeRequest(action: "rekey" | "convert", returning: string): string {
  return `  DELETE FROM pii_rekey_requests r USING pii_access_log l
  WHERE r.log_id = p_request AND l.id = r.log_id AND l.action = '${action}'
    AND l.session_role = session_user AND l.db_role = masq_caller()
    AND l.at > now() - interval '${REQUEST_WINDOW}' AND l.at <= now() AND age(l.xmin) > 0
  RETURNING ${returning} INTO q;`;
}

/**
 * The audit trail (schema version 3): the trigger that stamps every `pii_access_log` line, and the only
 * ways to the vault's ciphertexts. Each function pins its search_path to this schema (pg_temp last, so a
 * temporary table cannot stand in for a masq table). A fetch is honoured only against a request line that
 * an earlier transaction committed: `age(xmin) > 0` holds exactly for rows of transactions older than the
 * current one (and a visible row of another transaction is a committed one), never for the current
 * transaction or its subtransactions, so reading and then rolling back leaves the line in place.
 */
export const AUDIT_SQL = `
SELECT set_config('search_path', format('%I, pg_temp', current_schema()), true);

-- The role a statement runs for: the SET ROLE in force, else the login. Inside SECURITY DEFINER code
-- current_user is the definer, while the role setting stays the caller's.
CREATE OR REPLACE FUNCTION masq_caller() RETURNS text
  LANGUAGE sql STABLE SET search_path FROM CURRENT AS
$fn$ SELECT CASE WHEN current_setting('role') = 'none' THEN session_user::text ELSE current_setting('role') END $fn$;

CREATE OR REPLACE FUNCTION pii_access_log_stamp() RETURNS trigger
  LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  -- Lines of reads come from the request functions only; a direct INSERT runs as its caller.
  IF NEW.action IN ('recover', 'rekey', 'convert') AND current_user::text = masq_caller()
     AND NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN
    RAISE EXCEPTION 'pii_access_log: % lines are written by masq_%_request() only', NEW.action, NEW.action
      USING ERRCODE = '42501';
  END IF;
  NEW.at := now();
  NEW.session_role := session_user;
  NEW.db_role := masq_caller();
  RETURN NEW;
END $fn$;
DROP TRIGGER IF EXISTS pii_access_log_stamp ON pii_access_log;
CREATE TRIGGER pii_access_log_stamp BEFORE INSERT ON pii_access_log
  FOR EACH ROW EXECUTE FUNCTION pii_access_log_stamp();

-- Puts a recover of these tokens on record: one line per distinct token, found or not. The caller commits
-- it, then calls masq_recover().
CREATE OR REPLACE FUNCTION masq_recover_request(p_field text, p_tokens text[], p_reason text, p_os_user text)
  RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
DECLARE
  n integer;
BEGIN
  IF p_field IS NULL OR p_field NOT IN ('ip', 'device_id') THEN
    RAISE EXCEPTION 'masq_recover_request: the field must be ip or device_id' USING ERRCODE = '22023';
  END IF;
  IF p_reason IS NULL OR btrim(p_reason) = '' OR length(p_reason) > 1000 THEN
    RAISE EXCEPTION 'masq_recover_request: a reason of 1 to 1000 characters is required' USING ERRCODE = '22023';
  END IF;
  WITH asked AS (
    SELECT t.tok, min(t.n) AS n FROM unnest(p_tokens) WITH ORDINALITY AS t(tok, n)
    WHERE t.tok IS NOT NULL GROUP BY t.tok
  ), logged AS (
    INSERT INTO pii_access_log (os_user, action, field, token, reason, outcome)
    SELECT p_os_user, 'recover', p_field, a.tok, p_reason,
           CASE WHEN EXISTS (SELECT 1 FROM pii_vault v WHERE v.field = p_field AND v.token = a.tok)
                THEN 'found' ELSE 'not_found' END
    FROM asked a ORDER BY a.n
    RETURNING 1
  )
  SELECT count(*) INTO n FROM logged;
  RETURN n;
END $fn$;

-- The ciphertexts of tokens this session user and role asked for with masq_recover_request() in an
-- earlier, committed transaction within the window; any other existing token is refused.
CREATE OR REPLACE FUNCTION masq_recover(p_field text, p_tokens text[])
  RETURNS TABLE(token text, ciphertext bytea, key_id text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
#variable_conflict use_column
DECLARE
  unlogged text;
BEGIN
  RETURN QUERY
    SELECT v.token, v.ciphertext, v.key_id FROM pii_vault v
    WHERE v.field = p_field AND v.token = ANY(p_tokens) AND EXISTS (
      SELECT 1 FROM pii_access_log l
      WHERE l.token = v.token AND l.at > now() - interval '${REQUEST_WINDOW}' AND l.at <= now()
        AND l.action = 'recover' AND l.field = p_field AND l.outcome = 'found'
        AND l.session_role = session_user AND l.db_role = masq_caller() AND age(l.xmin) > 0);
  SELECT v.token INTO unlogged FROM pii_vault v
  WHERE v.field = p_field AND v.token = ANY(p_tokens) AND NOT EXISTS (
    SELECT 1 FROM pii_access_log l
    WHERE l.token = v.token AND l.at > now() - interval '${REQUEST_WINDOW}' AND l.at <= now()
      AND l.action = 'recover' AND l.field = p_field AND l.outcome = 'found'
      AND l.session_role = session_user AND l.db_role = masq_caller() AND age(l.xmin) > 0)
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'masq_recover: no committed masq_recover_request() of this role in the last ${REQUEST_WINDOW} names % token %...',
      p_field, left(unlogged, 12)
      USING ERRCODE = '42501', HINT = 'call masq_recover_request() in a transaction of its own first';
  END IF;
END $fn$;

-- Puts one batch of a rekey on record; returns the request's id for masq_rekey_batch(). With p_from_key_id,
-- the batch reads entries of that HMAC key only (rekey's probes); else those of any key but the new one.
CREATE OR REPLACE FUNCTION masq_rekey_request(
  p_new_key_id text, p_from_key_id text, p_limit integer, p_reason text, p_os_user text)
  RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
DECLARE
  line bigint;
BEGIN
  IF p_new_key_id IS NULL OR p_new_key_id !~ '^[A-Za-z0-9._-]{1,32}$'
     OR (p_from_key_id IS NOT NULL AND p_from_key_id !~ '^[A-Za-z0-9._-]{1,32}$') THEN
    RAISE EXCEPTION 'masq_rekey_request: a key id is 1-32 of A-Z a-z 0-9 . _ -' USING ERRCODE = '22023';
  END IF;
  IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
    RAISE EXCEPTION 'masq_rekey_request: the batch size must be 1 to 10000' USING ERRCODE = '22023';
  END IF;
  IF p_reason IS NULL OR btrim(p_reason) = '' OR length(p_reason) > 1000 THEN
    RAISE EXCEPTION 'masq_rekey_request: a reason of 1 to 1000 characters is required' USING ERRCODE = '22023';
  END IF;
  -- Requests not used in time are of no further use.
  DELETE FROM pii_rekey_requests r USING pii_access_log l
  WHERE l.id = r.log_id AND l.at < now() - interval '${REQUEST_WINDOW}';
  INSERT INTO pii_access_log (os_user, action, reason, outcome)
  VALUES (p_os_user, 'rekey', p_reason, format('requested up to %s vault entries%s to re-tokenise under HMAC key %s',
          p_limit, CASE WHEN p_from_key_id IS NULL THEN '' ELSE format(' of HMAC key %s', p_from_key_id) END,
          p_new_key_id))
  RETURNING id INTO line;
  INSERT INTO pii_rekey_requests (log_id, new_key_id, from_key_id, batch_limit)
  VALUES (line, p_new_key_id, p_from_key_id, p_limit);
  RETURN line;
END $fn$;

-- One rekey batch: uses up a committed request of this session user and role from the window, locks up
-- to its size of entries (FOR UPDATE SKIP LOCKED: concurrent rekeys share the work; the locks last until
-- the caller's transaction ends) and returns them, logging how many it read.
CREATE OR REPLACE FUNCTION masq_rekey_batch(p_request bigint)
  RETURNS TABLE(field text, token text, ciphertext bytea, key_id text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
#variable_conflict use_column
DECLARE
  q record;
  n bigint;
BEGIN
${takeRequest("rekey", "r.new_key_id, r.from_key_id, r.batch_limit, l.os_user, l.reason")}
  IF NOT FOUND THEN
    RAISE EXCEPTION 'masq_rekey_batch: % is no committed, unused masq_rekey_request() of this role from the last ${REQUEST_WINDOW}',
      p_request USING ERRCODE = '42501';
  END IF;
  RETURN QUERY
    SELECT v.field, v.token, v.ciphertext, v.key_id FROM pii_vault v
    WHERE CASE WHEN q.from_key_id IS NULL THEN v.key_id <> q.new_key_id ELSE v.key_id = q.from_key_id END
    ORDER BY v.field, v.token LIMIT q.batch_limit FOR UPDATE SKIP LOCKED;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    INSERT INTO pii_access_log (os_user, action, reason, outcome)
    VALUES (q.os_user, 'rekey', q.reason,
            format('read %s vault entries to re-tokenise under HMAC key %s (request %s)', n, q.new_key_id, p_request));
  END IF;
END $fn$;
`;

/**
 * Schema version 4 on the main database: the vault's key becomes (field, token, subject_key_id). Entries
 * under the old symmetric key keep subject_key_id = ''.
 */
export const SEALED_SQL = `
ALTER TABLE pii_vault ADD COLUMN IF NOT EXISTS subject_key_id text NOT NULL DEFAULT '';
DO $$
DECLARE pk text;
BEGIN
  SELECT conname INTO pk FROM pg_constraint
  WHERE conrelid = 'pii_vault'::regclass AND contype = 'p' AND array_length(conkey, 1) = 2;
  IF pk IS NOT NULL THEN
    EXECUTE format('ALTER TABLE pii_vault DROP CONSTRAINT %I', pk);
    ALTER TABLE pii_vault ADD PRIMARY KEY (field, token, subject_key_id);
  END IF;
END $$;
-- forget deletes a person's entries by their subject keys.
CREATE INDEX IF NOT EXISTS pii_vault_subject_key_id ON pii_vault (subject_key_id);
-- vault-convert's reads are on record as 'convert' lines.
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'pii_access_log'::regclass
                 AND conname = 'pii_access_log_action_check' AND pg_get_constraintdef(oid) LIKE '%convert%') THEN
    ALTER TABLE pii_access_log DROP CONSTRAINT IF EXISTS pii_access_log_action_check;
    ALTER TABLE pii_access_log ADD CONSTRAINT pii_access_log_action_check
      CHECK (action IN ('recover', 'forget_token', 'forget_user', 'rekey', 'redrive', 'convert'));
  END IF;
END $$;

-- vault-convert: one batch of entries under the old symmetric key, put on record first (as rekey's).
CREATE OR REPLACE FUNCTION masq_convert_request(p_limit integer, p_reason text, p_os_user text)
  RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
DECLARE
  line bigint;
BEGIN
  IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 10000 THEN
    RAISE EXCEPTION 'masq_convert_request: the batch size must be 1 to 10000' USING ERRCODE = '22023';
  END IF;
  IF p_reason IS NULL OR btrim(p_reason) = '' OR length(p_reason) > 1000 THEN
    RAISE EXCEPTION 'masq_convert_request: a reason of 1 to 1000 characters is required' USING ERRCODE = '22023';
  END IF;
  DELETE FROM pii_rekey_requests r USING pii_access_log l
  WHERE l.id = r.log_id AND l.at < now() - interval '${REQUEST_WINDOW}';
  INSERT INTO pii_access_log (os_user, action, reason, outcome)
  VALUES (p_os_user, 'convert', p_reason,
          format('requested up to %s vault entries under the old vault key, to seal them', p_limit))
  RETURNING id INTO line;
  INSERT INTO pii_rekey_requests (log_id, new_key_id, from_key_id, batch_limit) VALUES (line, '(sealed)', NULL, p_limit);
  RETURN line;
END $fn$;

-- One convert batch: uses up a committed request of this session user and role from the window, locks up
-- to its size of entries under the old key (subject_key_id = '') and returns them, logging how many.
CREATE OR REPLACE FUNCTION masq_convert_batch(p_request bigint)
  RETURNS TABLE(field text, token text, ciphertext bytea, key_id text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
#variable_conflict use_column
DECLARE
  q record;
  n bigint;
BEGIN
${takeRequest("convert", "r.batch_limit, l.os_user, l.reason")}
  IF NOT FOUND THEN
    RAISE EXCEPTION 'masq_convert_batch: % is no committed, unused masq_convert_request() of this role from the last ${REQUEST_WINDOW}',
      p_request USING ERRCODE = '42501';
  END IF;
  RETURN QUERY
    SELECT v.field, v.token, v.ciphertext, v.key_id FROM pii_vault v WHERE v.subject_key_id = ''
    ORDER BY v.field, v.token LIMIT q.batch_limit FOR UPDATE SKIP LOCKED;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    INSERT INTO pii_access_log (os_user, action, reason, outcome)
    VALUES (q.os_user, 'convert', q.reason, format('read %s vault entries under the old vault key to seal them (request %s)', n, p_request));
  END IF;
END $fn$;
`;

/**
 * The key store (schema version 4), in the database of PII_KEYSTORE_URL (by default the main one): one row
 * per subject data key, wrapped under the epoch (an HPKE encapsulation to the privacy officer) whose enc it
 * carries (lib/subject_keys.ts). Ingest only inserts: it cannot read or list the store.
 */
export const KEYSTORE_SQL = `
SELECT set_config('search_path', format('%I, pg_temp', current_schema()), true);
DO $$
BEGIN -- a key store of v4's unreleased first layout (a key pair per subject): replaced while it is empty
  IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('masq_subject_keys') AND attname = 'public_key') THEN
    IF EXISTS (SELECT 1 FROM masq_subject_keys) THEN
      RAISE EXCEPTION 'masq_subject_keys holds key pairs of a pre-release layout; erase them or use a new key store';
    END IF;
    DROP TABLE masq_subject_keys CASCADE;
  END IF;
END $$;
CREATE TABLE IF NOT EXISTS masq_subject_keys(
  key_id text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{32}$'),
  subject text NOT NULL CHECK (length(subject) BETWEEN 1 AND 128),
  epoch_enc bytea NOT NULL, wrapped_key bytea NOT NULL, officer_key_id text NOT NULL, mac bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS masq_subject_keys_subject ON masq_subject_keys (subject);
DROP FUNCTION IF EXISTS masq_subject_keys_of(text[]);
`;

/** The key store's grants, from scratch: ingest inserts; the privacy officer reads and deletes. */
export function keystoreGrantsSql(r: Roles): string {
  return `
${createRole(r.writer)}
${createRole(r.privacyOfficer)}
DO $$
DECLARE who text;
BEGIN
  FOR who IN SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
    FROM pg_class c, aclexplode(c.relacl) a
    WHERE c.oid = 'masq_subject_keys'::regclass AND a.grantee <> c.relowner
  LOOP
    EXECUTE format('REVOKE ALL ON masq_subject_keys FROM %s', who);
  END LOOP;
  EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM ${r.writer}, ${r.privacyOfficer}', current_schema());
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO ${r.writer}, ${r.privacyOfficer}', current_schema());
END $$;
GRANT INSERT ON masq_subject_keys TO ${r.writer};
GRANT SELECT, INSERT, DELETE ON masq_subject_keys TO ${r.privacyOfficer};
-- rekey re-MACs the keys under the new HMAC key, nothing else.
GRANT UPDATE (mac) ON masq_subject_keys TO ${r.privacyOfficer};
`;
}

/**
 * Creates or updates the key store in a database of its own (PII_KEYSTORE_URL), roles included, in one
 * transaction. `migrate` does the same inside its own transaction when the key store is the main database.
 */
export async function migrateKeystore(db: Queryable, opts: { rolePrefix?: string } = {}): Promise<void> {
  const roles = roleNames(opts.rolePrefix ?? DEFAULT_ROLE_PREFIX);
  await db.query(`BEGIN;
SELECT pg_advisory_xact_lock(${SCHEMA_LOCK});
${KEYSTORE_SQL}
${keystoreGrantsSql(roles)}
COMMIT;`).catch(async (err) => {
    await db.query("ROLLBACK").catch(() => {});
    throw err;
  });
}

/** Checks, without DDL, that the key store exists (a ConfigError naming `masq migrate` otherwise). */
export async function requireKeystore(db: Queryable): Promise<void> {
  const res = await db.query("SELECT to_regclass('masq_subject_keys') IS NOT NULL AS present");
  if (!res.rows[0]?.present) {
    throw new ConfigError(
      "PII_KEYSTORE_URL",
      "the key store has no masq_subject_keys table; run `masq migrate` (with the same PII_KEYSTORE_URL) first",
    );
  }
}

/** The functions masq_ grants on (signatures as GRANT and REVOKE want them). */
const FUNCTIONS = {
  appVersion: "app_version_text(integer)",
  caller: "masq_caller()",
  stamp: "pii_access_log_stamp()",
  recoverRequest: "masq_recover_request(text, text[], text, text)",
  recover: "masq_recover(text, text[])",
  rekeyRequest: "masq_rekey_request(text, text, integer, text, text)",
  rekeyBatch: "masq_rekey_batch(bigint)",
  convertRequest: "masq_convert_request(integer, text, text)",
  convertBatch: "masq_convert_batch(bigint)",
} as const;

/**
 * Token lookups for forget (is a token still referenced?), rekey (which rows carry it?) and analysts (the
 * logins of one address); without them each is a full scan. Hash indexes (schema version 2): every token
 * lookup is an equality, and on random 64-character tokens a hash index costs PostgreSQL less work per
 * insert and less room than a btree (see bench/BENCHMARKS.md). Version 1 made btrees; migrating replaces
 * them. They still slow bulk inserts, so
 * `migrate --no-token-indexes` leaves them out.
 */
export const TOKEN_INDEX_SQL = `
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
`;

function createRole(name: string): string {
  return `DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${name}') THEN CREATE ROLE ${name} NOLOGIN; END IF;
END $$;`;
}

/** masq's tables and views (the relations its grants cover). */
const RELATIONS = [
  "user_logins",
  "user_logins_rejected",
  "user_logins_ledger",
  "pii_vault",
  "pii_access_log",
  "pii_keys",
  "masq_schema_version",
  "user_logins_readable",
  "pii_rekey_requests",
];

/**
 * Every privilege on masq's objects taken from every role but their owner (table and column grants, the
 * log's identity sequence, the functions), so a re-run also takes away what an older version, another
 * role prefix or an operator granted. Other objects in the schema are left alone.
 */
function revokeAllSql(): string {
  const relations = RELATIONS.map((r) => `'${r}'`).join(", ");
  const functions = Object.values(FUNCTIONS);
  return `
REVOKE ALL ON FUNCTION ${functions.join(", ")} FROM PUBLIC;
DO $$
DECLARE r record;
BEGIN
  FOR r IN
    SELECT DISTINCT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || c.oid::regclass::text AS obj,
           CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END AS who
    FROM pg_class c
    CROSS JOIN LATERAL (
      SELECT a.grantee FROM aclexplode(c.relacl) a
      UNION SELECT a.grantee FROM pg_attribute att, aclexplode(att.attacl) a WHERE att.attrelid = c.oid
    ) g
    WHERE (c.relnamespace = current_schema()::regnamespace AND c.relname IN (${relations})
           OR c.oid = pg_get_serial_sequence('pii_access_log', 'id')::regclass)
      AND g.grantee <> c.relowner
  LOOP
    EXECUTE format('REVOKE ALL ON %s FROM %s', r.obj, r.who);
  END LOOP;
  FOR r IN
    SELECT DISTINCT p.oid::regprocedure::text AS fn,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS who
    FROM pg_proc p, aclexplode(p.proacl) a
    WHERE p.oid IN (${functions.map((f) => `'${f}'::regprocedure`).join(", ")}) AND a.grantee <> p.proowner
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %s', r.fn, r.who);
  END LOOP;
END $$;`;
}

/**
 * The grants, from scratch (see revokeAllSql): what each role's commands need, nothing more.
 */
function grantsSql(r: Roles): string {
  const all = `${r.writer}, ${r.analyst}, ${r.privacyOfficer}`;
  const f = FUNCTIONS;
  return `
${createRole(r.writer)}
${createRole(r.analyst)}
${createRole(r.privacyOfficer)}
${revokeAllSql()}
DO $$ BEGIN
  -- Whoever may create objects in the schema could shadow what the SECURITY DEFINER functions call.
  EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM ${all}', current_schema());
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO ${all}', current_schema());
END $$;
GRANT EXECUTE ON FUNCTION ${f.appVersion} TO ${all};
GRANT SELECT ON masq_schema_version TO ${all};

-- masq run. The batch statement returns the message ids it newly recorded (RETURNING needs SELECT), and ON
-- CONFLICT needs SELECT on its conflict columns: ids and tokens only, never the vault's ciphertext or a body.
GRANT INSERT ON user_logins, user_logins_rejected, user_logins_ledger, pii_vault TO ${r.writer};
GRANT SELECT ON user_logins_ledger TO ${r.writer};
GRANT SELECT (message_id) ON user_logins_rejected TO ${r.writer};
GRANT SELECT, INSERT ON pii_keys TO ${r.writer};
GRANT UPDATE (last_used) ON pii_keys TO ${r.writer};

GRANT SELECT ON user_logins_readable TO ${r.analyst};

-- recover and rekey read ciphertexts through the functions only; forget deletes; rekey rewrites the two
-- token columns and the vault entries; every command appends its lines (time and roles stamped).
GRANT EXECUTE ON FUNCTION ${f.caller}, ${f.recoverRequest}, ${f.recover}, ${f.rekeyRequest}, ${f.rekeyBatch},
  ${f.convertRequest}, ${f.convertBatch} TO ${r.privacyOfficer};
GRANT SELECT, DELETE ON user_logins TO ${r.privacyOfficer};
GRANT UPDATE (masked_ip, masked_device_id) ON user_logins TO ${r.privacyOfficer};
GRANT SELECT, DELETE ON user_logins_rejected TO ${r.privacyOfficer};
GRANT SELECT (field, token, key_id, subject_key_id, created_at), INSERT, DELETE ON pii_vault TO ${r.privacyOfficer};
GRANT SELECT, INSERT (os_user, action, field, token, user_id, message_id, reason, outcome) ON pii_access_log
  TO ${r.privacyOfficer};
GRANT SELECT, INSERT ON pii_keys TO ${r.privacyOfficer};
GRANT UPDATE (last_used) ON pii_keys TO ${r.privacyOfficer};
GRANT SELECT ON user_logins_readable TO ${r.privacyOfficer};
`;
}

// Serialises concurrent migrations: CREATE OR REPLACE of one function from two sessions can fail.
const SCHEMA_LOCK = 0x6d617371; // "masq"

/** What migrate() did. */
export interface MigrateResult {
  from: number;
  to: number;
  roles: Roles;
  /** What the schema's owner should fix by hand (migrate does not change other roles' rights). */
  warnings: string[];
}

async function readVersion(db: Queryable): Promise<{ version: number; rolePrefix: string } | undefined> {
  const present = await db.query("SELECT to_regclass('masq_schema_version') IS NOT NULL AS present");
  if (!present.rows[0]?.present) return undefined;
  const res = await db.query("SELECT version, role_prefix FROM masq_schema_version");
  const row = res.rows[0] as { version: number; role_prefix: string } | undefined;
  return row ? { version: row.version, rolePrefix: row.role_prefix } : undefined;
}

/**
 * Creates or upgrades the schema in the connection's current schema, and the roles with their grants, in
 * one transaction (sent as one simple-query message, so it stays atomic through PGlite's multiplexer).
 * Idempotent. Refuses a database whose schema is newer than this masq.
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import {
 *   DEFAULT_ROLE_PREFIX,
 *   dropRoles,
 *   excessPrivileges,
 *   migrate,
 *   type MigrateResult,
 *   type Queryable,
 *   recordKeyUse,
 *   requireSchema,
 *   roleNames,
 *   type Roles,
 *   SCHEMA_SQL,
 *   SCHEMA_VERSION,
 *   TOKEN_INDEX_SQL,
 * } from "./schema.ts";
 *
 * const client = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
 * await client.connect();
 * const db: Queryable = client;
 * // As the database owner, what `masq migrate` does (idempotent):
 * const done: MigrateResult = await migrate(db, { rolePrefix: DEFAULT_ROLE_PREFIX, tokenIndexes: true });
 * // What `masq run` does at start, without DDL:
 * const { version } = await requireSchema(db);
 * await recordKeyUse(db, "k1");
 * const roles: Roles = roleNames(DEFAULT_ROLE_PREFIX);
 * console.log(done.to === SCHEMA_VERSION, version, roles.writer, await excessPrivileges(db));
 * console.log(`${SCHEMA_SQL.length + TOKEN_INDEX_SQL.length} characters of DDL`);
 * await dropRoles(db, "masq_test_0123456789ab_"); // a throwaway test schema's roles
 * await client.end();
 * ```
 */
export async function migrate(
  db: Queryable,
  opts: { rolePrefix?: string; tokenIndexes?: boolean; writerLogin?: WriterLogin; keystore?: boolean } = {},
): Promise<MigrateResult> {
  const roles = roleNames(opts.rolePrefix ?? DEFAULT_ROLE_PREFIX);
  const prefix = opts.rolePrefix ?? DEFAULT_ROLE_PREFIX;
  const before = await readVersion(db);
  if (before && before.version > SCHEMA_VERSION) {
    throw new ConfigError(
      "schema",
      `the database's masq schema is version ${before.version}, newer than this masq's ${SCHEMA_VERSION}; upgrade masq`,
    );
  }
  await db.query(`BEGIN;
SELECT pg_advisory_xact_lock(${SCHEMA_LOCK});
${SCHEMA_SQL}
${AUDIT_SQL}
${SEALED_SQL}
${opts.tokenIndexes === false ? "" : TOKEN_INDEX_SQL}
${grantsSql(roles)}
${opts.writerLogin ? writerLoginSql(roles.writer, opts.writerLogin) : ""}
${opts.keystore === false ? "" : `${KEYSTORE_SQL}\n${keystoreGrantsSql(roles)}`}
INSERT INTO masq_schema_version (version, role_prefix) VALUES (${SCHEMA_VERSION}, '${prefix}')
  ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version, role_prefix = EXCLUDED.role_prefix,
  migrated_at = now();
COMMIT;`).catch(async (err) => {
    await db.query("ROLLBACK").catch(() => {});
    throw err;
  });
  const open = await db.query(
    "SELECT current_schema() AS schema, has_schema_privilege('public', current_schema(), 'CREATE') AS open",
  );
  const { schema, open: anyone } = open.rows[0] as { schema: string; open: boolean };
  const warnings = anyone
    ? [
      `every role may create objects in schema ${schema}, and so shadow what masq's SECURITY DEFINER functions call; ` +
      `REVOKE CREATE ON SCHEMA ${schema} FROM PUBLIC`,
    ]
    : [];
  return { from: before?.version ?? 0, to: SCHEMA_VERSION, roles, warnings };
}

/**
 * Checks, without DDL, that the database holds this masq's schema version; returns the role prefix the
 * schema was migrated with. Missing or older: a ConfigError naming `masq migrate` (exit 2).
 */
export async function requireSchema(db: Queryable): Promise<{ version: number; rolePrefix: string }> {
  let found;
  try {
    found = await readVersion(db);
  } catch (err) {
    // Only a refusal is about the schema; an unreachable server is reported as such by the caller.
    if ((err as { code?: string })?.code !== "42501") throw err;
    throw new ConfigError(
      "schema",
      `cannot read masq_schema_version (${
        errorMessage(err)
      }); run \`masq migrate\` as the database owner, and connect as a member of the writer role`,
    );
  }
  if (found === undefined) {
    throw new ConfigError(
      "schema",
      "the database has no masq schema (masq_schema_version is missing); run `masq migrate` as the database owner first",
    );
  }
  if (found.version < SCHEMA_VERSION) {
    throw new ConfigError(
      "schema",
      `the database's masq schema is version ${found.version}, older than this masq's ${SCHEMA_VERSION}; run \`masq migrate\``,
    );
  }
  if (found.version > SCHEMA_VERSION) {
    throw new ConfigError(
      "schema",
      `the database's masq schema is version ${found.version}, newer than this masq's ${SCHEMA_VERSION}; upgrade masq`,
    );
  }
  return found;
}

/**
 * What the connected role may do beyond the writer's rights (read the vault's ciphertext directly or
 * through masq_recover(), read user_logins, delete rows): empty for a member of the writer role only;
 * `run` warns otherwise.
 */
export async function excessPrivileges(db: Queryable): Promise<string[]> {
  const res = await db.query(
    `SELECT has_column_privilege('pii_vault', 'ciphertext', 'SELECT')
              OR has_function_privilege('masq_recover(text, text[])', 'EXECUTE')
              OR has_function_privilege('masq_rekey_batch(bigint)', 'EXECUTE')
              OR has_function_privilege('masq_convert_batch(bigint)', 'EXECUTE')
              OR has_column_privilege('pii_vault', 'token', 'SELECT') AS vault,
            has_table_privilege('user_logins', 'SELECT') AS read_rows,
            has_table_privilege('user_logins', 'DELETE') AS delete_rows`,
  );
  const r = res.rows[0] as { vault: boolean; read_rows: boolean; delete_rows: boolean };
  return [
    ...(r.vault ? ["read the vault"] : []),
    ...(r.read_rows ? ["read user_logins"] : []),
    ...(r.delete_rows ? ["delete rows"] : []),
  ];
}

/**
 * Records that the HMAC key `keyId` made tokens now (first_used set once, last_used every time), so the
 * tokens of a period can be told apart after a rotation.
 */
export async function recordKeyUse(db: Queryable, keyId: string): Promise<void> {
  await db.query(
    `INSERT INTO pii_keys (id, first_used, last_used) VALUES ($1, now(), now())
     ON CONFLICT (id) DO UPDATE SET last_used = now()`,
    [keyId],
  );
}

/**
 * Drops the roles `migrate` made with `prefix` (for throwaway schemas: tests, benchmarks). Their privileges
 * in the current database go with them; run it after dropping the schema.
 */
export async function dropRoles(db: Queryable, prefix: string): Promise<void> {
  const roles = roleNames(prefix);
  for (const role of [roles.writer, roles.analyst, roles.privacyOfficer]) {
    const exists = await db.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [role]);
    if (exists.rows.length === 0) continue;
    await db.query(`DROP OWNED BY ${role}`);
    await db.query(`DROP ROLE ${role}`);
  }
}
