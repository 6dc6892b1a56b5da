/**
 * What `masq run` holds of the sealed vault: the privacy officer's public key and the key store's URL. It
 * refuses to start holding anything that opens the vault (the officer's private key; the old symmetric
 * key next to a public key), and opens the key store's pool for the sealing vault (lib/sealing.ts).
 *
 * @module
 */
import pg from "pg";
import type { Config, Env, ReadFile } from "./config.ts";
import { ConfigError, errorMessage } from "./errors.ts";
import { createSubjectKeyStore } from "./keystore.ts";
import type { Logger } from "./log.ts";
import { type OfficerPublicKey, sealMacKey } from "./seal.ts";
import { createSealingVault, type SealingVault } from "./sealing.ts";
import { redactUrl } from "./secrets.ts";
import { classify, pgTypes } from "./sink/postgres.ts";
import { retry } from "./retry.ts";
import { type Queryable, requireKeystore } from "./sink/schema.ts";
import { keystoreUrl, resolveOfficerPublicKey } from "./vault_keys.ts";
import { poolConfig, processEnv } from "./sink/connection.ts";

/** The sealed vault's settings for masq run. */
export interface IngestVaultKeys {
  officer: OfficerPublicKey;
  keystoreUrl: string;
  /** The key store is the main database (PII_KEYSTORE_URL unset or equal to DATABASE_URL). */
  sameDatabase?: boolean;
}

/**
 * The public key and key store of `masq run`, or undefined when no public key is configured. A ConfigError
 * (exit 2) when run is given the private key, or the symmetric vault key beside the public one.
 */
export async function ingestVaultKeys(
  config: Pick<Config, "databaseUrl" | "vaultKey">,
  env: Env,
  readFile: ReadFile,
): Promise<IngestVaultKeys | undefined> {
  for (const name of ["PII_VAULT_PRIVATE_KEY", "PII_VAULT_PRIVATE_KEY_FILE"]) {
    if ((env(name) ?? "") !== "") {
      throw new ConfigError(
        name,
        "is set for masq run; the private key belongs to the privacy officer's commands only (recover, redrive, rekey, vault-convert): give run PII_VAULT_PUBLIC_KEY_FILE",
      );
    }
  }
  const officer = await resolveOfficerPublicKey(env, readFile);
  if (officer === undefined) return undefined;
  if (config.vaultKey !== undefined) {
    throw new ConfigError(
      "PII_VAULT_KEY",
      "is set beside PII_VAULT_PUBLIC_KEY; masq run seals with the public key and must not hold the symmetric key (keep it for vault-convert and recover until the conversion is done)",
    );
  }
  const url = keystoreUrl(env, config.databaseUrl);
  return { officer, keystoreUrl: url, sameDatabase: url === config.databaseUrl };
}

/** Opens the key store's pool and the sealing vault over it; close() ends the pool. */
export async function openSealingVault(
  config: Pick<Config, "hmacKey" | "hmacKeyId" | "dbPoolSize">,
  keys: IngestVaultKeys,
  log: Logger,
  env: Env = processEnv,
): Promise<{ vault: SealingVault; close(): Promise<void> }> {
  // The key store gets the main database's TLS and pooler handling (lib/sink/connection.ts).
  const pool = new pg.Pool(
    await poolConfig(keys.keystoreUrl, env, {
      types: pgTypes,
      max: Math.max(2, Math.ceil(config.dbPoolSize / 2)),
      application_name: "masq run (key store)",
      connectionTimeoutMillis: 10_000,
    }).catch((err) => {
      throw err instanceof ConfigError && err.setting.includes("DATABASE_URL")
        ? new ConfigError("PII_KEYSTORE_URL", err.message.slice(err.setting.length + 2))
        : err;
    }),
  );
  pool.on("error", () => {}); // an idle client's error; the next query reports it
  try {
    await requireKeystore(pool);
  } catch (err) {
    await pool.end().catch(() => {});
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(
      "PII_KEYSTORE_URL",
      `cannot use ${redactUrl(keys.keystoreUrl)}: ${errorMessage(err)}`,
    );
  }
  const macKey = sealMacKey(config.hmacKey);
  // An outage of the key store is waited out like one of the main database (capped backoff, for as long
  // as it lasts; the leases keep the batch's messages invisible meanwhile), never turned into lost work.
  const patient: Queryable = {
    query: (sql: string, params?: unknown[]) =>
      retry(() => pool.query(sql, params) as Promise<{ rows: unknown[] }>, {
        what: "key store query",
        log,
        retryable: (err) => classify(err) === "transient",
      }),
  };
  const subjects = createSubjectKeyStore(patient, keys.officer, macKey, {
    sameDatabaseAsEntries: keys.sameDatabase === true,
  });
  // A dead letter leaves for the DLQ with no commit of the main database after it: its keys commit durably.
  const letterSubjects = keys.sameDatabase === true
    ? createSubjectKeyStore(patient, keys.officer, macKey)
    : subjects;
  return {
    vault: createSealingVault({
      officer: keys.officer,
      subjects,
      letterSubjects,
      macKey,
      hmacKeyId: config.hmacKeyId,
    }),
    close: () => pool.end().catch(() => {}),
  };
}
