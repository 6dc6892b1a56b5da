/**
 * Helpers for the PII-lifecycle tests: vault rows written exactly as the pipeline's writer writes them
 * (HMAC token, AES-256-GCM under vaultAad(field, token, keyId)), role checks, and the masq CLI with the
 * lifecycle's environment variables.
 */
import pg from "pg";
import { pgTypes } from "../../lib/sink/postgres.ts";
import { createMasker } from "../../lib/transform/mask.ts";
import { createVaultCipher, toBase64, vaultAad } from "../../lib/vault.ts";
import { assertEquals } from "./assert.ts";
import {
  collect,
  killAndReap,
  MAIN,
  type MasqResult,
  ROOT,
  runPermissions,
  spawnWatched,
  TEST_KEY,
  waitForOutput,
} from "./processes.ts";
import { type TestDatabase } from "./databases.ts";

export const VAULT_KEY = Uint8Array.from(
  "f04a539bc5c3ee7fcf72f66334bf63653b0a8947e2c171e2587bf984277103e9".match(/../g)!,
  (h) => parseInt(h, 16),
);
export const VAULT_KEY_B64 = toBase64(VAULT_KEY);
export const OTHER_VAULT_KEY_B64 = toBase64(
  Uint8Array.from(
    "010fdb4d88dd6cfad52a44c30b55ca1218635b24057dd237cc50b0e2c2a6dcb1".match(/../g)!,
    (h) => parseInt(h, 16),
  ),
);

export interface Login {
  userId: string;
  ip: string | null;
  deviceId: string | null;
}

/** Tokens of a value under the test key (as masq run makes them). */
export async function tokensOf(hmacKey = TEST_KEY) {
  const masker = await createMasker(hmacKey);
  return {
    ip: async (v: string) => await masker.ip(v),
    deviceId: async (v: string) => await masker.deviceId(v),
  };
}

/**
 * Inserts logins the way the writer does: masked rows, and one vault entry per distinct (field, token),
 * ON CONFLICT DO NOTHING, in one statement.
 */
export async function insertLogins(
  db: TestDatabase,
  logins: readonly Login[],
  opts: { hmacKey?: string; keyId?: string; vault?: boolean } = {},
): Promise<void> {
  const keyId = opts.keyId ?? "k1";
  const tok = await tokensOf(opts.hmacKey ?? TEST_KEY);
  const cipher = await createVaultCipher(VAULT_KEY, "v1");
  const rows: unknown[][] = [[], [], []];
  const vault = new Map<string, [string, string, Uint8Array]>();
  for (const l of logins) {
    const ip = l.ip === null ? null : await tok.ip(l.ip);
    const dev = l.deviceId === null ? null : await tok.deviceId(l.deviceId);
    rows[0].push(l.userId);
    rows[1].push(ip);
    rows[2].push(dev);
    if (opts.vault === false) continue;
    if (ip !== null && l.ip !== null) {
      vault.set(`ip:${ip}`, ["ip", ip, await cipher.encrypt(l.ip, vaultAad("ip", ip, keyId))]);
    }
    if (dev !== null && l.deviceId !== null) {
      vault.set(`d:${dev}`, [
        "device_id",
        dev,
        await cipher.encrypt(l.deviceId, vaultAad("device_id", dev, keyId)),
      ]);
    }
  }
  const v = [...vault.values()];
  await db.query(
    `WITH logins AS (
       INSERT INTO user_logins (user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date)
       SELECT u, 'android', ip, dev, 'en_US', 2003000, '2026-11-23' FROM unnest($1::text[], $2::text[], $3::text[]) AS t(u, ip, dev)
     )
     INSERT INTO pii_vault (field, token, ciphertext, key_id)
     SELECT f, t, c, $7 FROM unnest($4::text[], $5::text[], $6::bytea[]) AS v(f, t, c)
     ON CONFLICT DO NOTHING`,
    [rows[0], rows[1], rows[2], v.map((e) => e[0]), v.map((e) => e[1]), v.map((e) => e[2]), keyId],
  );
}

/** Why a test that needs real login roles cannot run here, or undefined when it can. */
export const NO_LOGIN_ROLES = Deno.env.get("TEST_DATABASE_URL")
  ? undefined
  : "needs TEST_DATABASE_URL: PGlite's socket server knows one user, so there are no login roles to connect as";

/** A login role of a test (a member of one of masq's groups) and a connection as it over TCP. */
export interface DbLogin {
  name: string;
  /** The test database's URL with this login as its user (for the CLI). */
  url: string;
  client: pg.Client;
  /** Runs `sql` as this login in a rolled-back transaction: "ok", or the SQLSTATE it raised. */
  attempt(sql: string, params?: unknown[]): Promise<string>;
  /** Closes the connection and drops the role. */
  drop(): Promise<void>;
}

/**
 * `CREATE ROLE <prefix><suffix> LOGIN IN ROLE <group>` and a connection as it (the local server trusts
 * 127.0.0.1); only on a real server (NO_LOGIN_ROLES).
 */
export async function createLogin(db: TestDatabase, group: string, suffix: string): Promise<DbLogin> {
  const name = `${db.rolePrefix}${suffix}`;
  await db.query(`CREATE ROLE ${name} LOGIN IN ROLE ${group}`);
  const u = new URL(db.url);
  u.username = name;
  const client = new pg.Client({ connectionString: u.toString(), types: pgTypes });
  try {
    await client.connect();
  } catch (err) {
    await db.query(`DROP ROLE ${name}`).catch(() => {});
    throw err;
  }
  return {
    name,
    url: u.toString(),
    client,
    async attempt(sql, params) {
      await client.query("BEGIN");
      try {
        await client.query(sql, params);
        return "ok";
      } catch (err) {
        return String((err as { code?: string }).code ?? (err as Error).message);
      } finally {
        await client.query("ROLLBACK");
      }
    },
    async drop() {
      await client.end().catch(() => {});
      await db.query(`DROP ROLE IF EXISTS ${name}`);
    },
  };
}

/** The number of vault entries (rows of pii_vault). */
export async function vaultCount(db: TestDatabase): Promise<number> {
  return (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pii_vault"))[0].n;
}

/** Runs `sql` as `role` (SET LOCAL ROLE in a rolled-back transaction): "ok", or the SQLSTATE it raised. */
export async function asRole(
  db: TestDatabase,
  role: string,
  sql: string,
  params?: unknown[],
): Promise<string> {
  await db.query("BEGIN");
  try {
    await db.query(`SET LOCAL ROLE ${role}`);
    await db.query(sql, params);
    return "ok";
  } catch (err) {
    return String((err as { code?: string }).code ?? (err as Error).message);
  } finally {
    await db.query("ROLLBACK");
  }
}

export interface LifecycleRun {
  databaseUrl: string;
  env?: Record<string, string>;
  stdin?: string;
  /** Extra directories masq may read (key files). */
  read?: string[];
  timeoutMs?: number;
}

/**
 * Spawns the real masq CLI with the masq task's permissions (the OS user for the access log comes from
 * USER/LOGNAME, which that list must allow), plus reads of the given key directories.
 */
export function spawnLifecycle(args: string[], o: LifecycleRun): Deno.ChildProcess {
  const perms = runPermissions().map((p) =>
    p.startsWith("--allow-read=") && o.read ? `${p},${o.read.join(",")}` : p
  );
  return spawnWatched(Deno.execPath(), ["run", ...perms, MAIN, ...args], {
    env: {
      DATABASE_URL: o.databaseUrl,
      SQS_QUEUE_URL: "http://127.0.0.1:9/000000000000/unused",
      NO_COLOR: "1",
      HOME: Deno.env.get("HOME") ?? "/root",
      PATH: Deno.env.get("PATH") ?? "",
      USER: "dpo-test",
      ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
      ...o.env,
    },
    clearEnv: true,
    cwd: ROOT,
    label: `masq ${args.join(" ")}`,
    ...(o.stdin !== undefined ? { stdin: o.stdin } : {}),
    ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
  });
}

/** Runs a lifecycle command to completion (SIGKILLed, and an error thrown, after its time limit). */
export function masq(args: string[], o: LifecycleRun): Promise<MasqResult> {
  return collect(spawnLifecycle(args, o));
}

/**
 * Spawns a command with MASQ_TEST_PAUSE=<point>, waits until it says it paused there, SIGKILLs it and reaps
 * it. Fails if it ends first or does not pause within a minute.
 */
export async function killAtPause(args: string[], o: LifecycleRun, point: string): Promise<void> {
  const child = spawnLifecycle(args, { ...o, env: { ...o.env, MASQ_TEST_PAUSE: point } });
  try {
    await waitForOutput(child, new RegExp(`paused at ${point}`), { timeoutMs: 60_000 });
  } finally {
    await killAndReap(child);
  }
  assertEquals((await child.status).signal, "SIGKILL");
}
