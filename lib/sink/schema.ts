/**
 * masq's schema and roles, versioned. `masq migrate` is the only code path that runs DDL: it creates the
 * tables, the function, the view and three group roles, and records the version. Every other command
 * checks the version (no DDL) and stops with exit 2 naming `migrate` when the schema is missing or older.
 *
 * Roles (NOLOGIN groups; grant them to login users):
 * - `<prefix>writer`: inserts into the pipeline tables and the vault, records its key id; reads nothing
 *   personal (no SELECT on user_logins or pii_vault, no DELETE anywhere).
 * - `<prefix>analyst`: SELECT on `user_logins_readable` only.
 * - `<prefix>privacy_officer`: the vault, recover, forget and rekey; appends to `pii_access_log`, which
 *   nobody but its owner may change or delete.
 *
 * Roles are cluster-wide while grants are per schema, hence the prefix (tests use one per schema).
 *
 * @module
 */
import { ConfigError, errorMessage } from "../errors.ts";

/** The schema version this masq writes and expects. */
export const SCHEMA_VERSION = 2;

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
      `${JSON.stringify(prefix)} is not a lowercase identifier prefix (a-z, 0-9, _; at most 40 characters)`,
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

/**
 * Token lookups for forget (is a token still referenced?), rekey (which rows carry it?) and analysts (the
 * logins of one address); without them each is a full scan. Hash indexes (schema version 2): every token
 * lookup is an equality, and on random 64-character tokens a hash index costs PostgreSQL about a third
 * of a btree's work per insert and a quarter of its size (600,000 rows: 3 against 7 to 10 µs per row,
 * 20 against 71 MB). Version 1 made btrees; migrating replaces them. They still slow bulk inserts, so
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

/** The grants: everything revoked first, so a re-run also takes away what an older version granted. */
function grantsSql(r: Roles): string {
  const all = `${r.writer}, ${r.analyst}, ${r.privacyOfficer}`;
  const tables = [
    "user_logins",
    "user_logins_rejected",
    "user_logins_ledger",
    "pii_vault",
    "pii_access_log",
    "pii_keys",
    "masq_schema_version",
    "user_logins_readable",
  ];
  return `
${createRole(r.writer)}
${createRole(r.analyst)}
${createRole(r.privacyOfficer)}
DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO ${all}', current_schema()); END $$;
REVOKE ALL ON ${tables.join(", ")} FROM PUBLIC, ${all};
REVOKE ALL ON FUNCTION app_version_text(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_version_text(integer) TO ${all};
GRANT SELECT ON masq_schema_version TO ${all};

GRANT INSERT ON user_logins, user_logins_rejected, user_logins_ledger, pii_vault TO ${r.writer};
-- The batch statement returns the message ids it newly recorded (RETURNING needs SELECT), and ON CONFLICT
-- needs SELECT on its conflict columns: ids and tokens only, never the vault's ciphertext or a body.
GRANT SELECT ON user_logins_ledger TO ${r.writer};
GRANT SELECT (message_id) ON user_logins_rejected TO ${r.writer};
GRANT SELECT (field, token) ON pii_vault TO ${r.writer};
GRANT SELECT, INSERT, UPDATE ON pii_keys TO ${r.writer};

GRANT SELECT ON user_logins_readable TO ${r.analyst};

GRANT SELECT, UPDATE, DELETE ON user_logins TO ${r.privacyOfficer};
GRANT SELECT, DELETE ON user_logins_rejected TO ${r.privacyOfficer};
GRANT SELECT, INSERT, DELETE ON pii_vault TO ${r.privacyOfficer};
GRANT SELECT, INSERT ON pii_access_log TO ${r.privacyOfficer};
GRANT SELECT, INSERT, UPDATE ON pii_keys TO ${r.privacyOfficer};
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
  opts: { rolePrefix?: string; tokenIndexes?: boolean } = {},
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
${opts.tokenIndexes === false ? "" : TOKEN_INDEX_SQL}
${grantsSql(roles)}
INSERT INTO masq_schema_version (version, role_prefix) VALUES (${SCHEMA_VERSION}, '${prefix}')
  ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version, role_prefix = EXCLUDED.role_prefix,
  migrated_at = now();
COMMIT;`).catch(async (err) => {
    await db.query("ROLLBACK").catch(() => {});
    throw err;
  });
  return { from: before?.version ?? 0, to: SCHEMA_VERSION, roles };
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
 * What the connected role may do beyond the writer's rights (read the vault's ciphertext, delete rows):
 * empty for a member of the writer role only; `run` warns otherwise.
 */
export async function excessPrivileges(db: Queryable): Promise<string[]> {
  const res = await db.query(
    `SELECT has_column_privilege('pii_vault', 'ciphertext', 'SELECT') AS vault,
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
