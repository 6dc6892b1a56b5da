/**
 * `masq redrive`: after the producer's bug is fixed, send dead-lettered messages back to the source queue,
 * each with its original body restored from the encrypted copy (needs the vault key) and its replay key
 * signed with the HMAC key `masq run` uses. Prints a JSON summary with how many were redriven and how many
 * were left, and why.
 */
import { checkKeyStrength, refuseSharedKey, resolveHmacKey } from "../secrets.ts";
import { type Env, type ReadFile } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { connectDatabase } from "../lifecycle/db.ts";
import {
  lifecycleSecrets,
  officerSecrets,
  openVaultReader,
  requireVaultKey,
  settingsWithoutHmacKey,
} from "../lifecycle/keys.ts";
import { optionalReason, osUser } from "../lifecycle/access.ts";
import { redrive as runRedrive } from "../lifecycle/redrive.ts";
import { requireSchema } from "../sink/schema.ts";
import { createSqsClient } from "../source/sqs.ts";
import type { Command } from "./command.ts";

/** The default --reason, recorded in pii_access_log. */
const DEFAULT_REASON = "redrive of dead-lettered messages";

/** The HMAC key of `masq run` (PII_HMAC_KEY or PII_HMAC_KEY_FILE), or a ConfigError saying redrive needs it. */
function requireHmacKey(env: Env, readFile: ReadFile): string {
  if ((env("PII_HMAC_KEY") ?? "") === "" && (env("PII_HMAC_KEY_FILE") ?? "") === "") {
    throw new ConfigError(
      "PII_HMAC_KEY",
      "not set; `masq redrive` needs the HMAC key `masq run` uses (PII_HMAC_KEY or PII_HMAC_KEY_FILE), to sign each replay's masq_redrive_id",
    );
  }
  const key = resolveHmacKey(env, readFile);
  checkKeyStrength(key);
  return key;
}

export const redrive: Command = {
  usage:
    "redrive [--dry-run] [--max N] [--reason R]\n                                replay dead letters to the source queue (vault key, HMAC key)",
  flags: { "dry-run": { type: "boolean" }, max: { type: "string" }, reason: { type: "string" } },
  settings: true,
  async run(ctx) {
    const maxText = ctx.values.max;
    const max = maxText === undefined ? Number.MAX_SAFE_INTEGER : Number(maxText);
    if (maxText !== undefined && (!/^\d+$/.test(String(maxText)) || max < 1)) {
      throw new ConfigError("--max", `${JSON.stringify(maxText)} is not a whole number of at least 1`);
    }
    const reason = optionalReason(ctx.values.reason, DEFAULT_REASON);
    const config = settingsWithoutHmacKey(ctx.values, ctx.env, ctx.readFile);
    const sealed = (ctx.env("PII_VAULT_PRIVATE_KEY") ?? "") !== "" ||
      (ctx.env("PII_VAULT_PRIVATE_KEY_FILE") ?? "") !== "";
    if (!sealed) requireVaultKey(config, "redrive"); // a key to open letters with, first
    const hmacKey = requireHmacKey(ctx.env, ctx.readFile);
    if (config.vaultKey) refuseSharedKey(hmacKey, config.vaultKey);
    const secrets = [...lifecycleSecrets(config), hmacKey, ...officerSecrets(ctx.env, ctx.readFile)];
    const log = createLogger({ format: config.logFormat, level: config.logLevel, secrets });
    ctx.useLogger(log, secrets);
    const db = await connectDatabase(config.databaseUrl, "redrive", ctx.env);
    let opened;
    try {
      opened = await openVaultReader(config, ctx.env, ctx.readFile, "redrive", db);
    } catch (err) {
      await db.end().catch(() => {});
      throw err;
    }
    const vault = "entry" in opened.reader ? opened.legacy : opened.reader;
    const unsealer = "entry" in opened.reader ? opened.reader : undefined;
    const sqs = createSqsClient(
      { endpoint: config.endpoint, region: config.region, env: ctx.env },
      config.sqsProtocol === "query" ? "query" : "json",
    );
    try {
      await requireSchema(db);
      const result = await runRedrive({
        sqs,
        db,
        dlqUrl: config.dlqUrl,
        queueUrl: config.queueUrl,
        ...(vault ? { vault } : {}),
        ...(unsealer ? { unsealer } : {}),
        hmacKey,
        dryRun: ctx.values["dry-run"] === true,
        max,
        who: { osUser: osUser(ctx.env), reason },
        log,
      });
      const leftTotal = Object.values(result.left).reduce((a, b) => a + b, 0);
      log.info(result.dryRun ? "dry run: nothing sent or deleted" : "redrive done", {
        redriven: result.redriven,
        left_in_dlq: leftTotal,
        ...result.left,
      });
      ctx.print(JSON.stringify({ ...result, leftInDlq: leftTotal }));
      if (result.left.undecryptable > 0) {
        log.error(
          unsealer === undefined
            ? `${result.left.undecryptable} dead letters do not decrypt under vault key ${vault?.keyId}: wrong PII_VAULT_KEY?`
            : `${result.left.undecryptable} dead letters do not decrypt: wrong PII_VAULT_PRIVATE_KEY (or PII_VAULT_KEY)?`,
        );
        return 1;
      }
      return 0;
    } finally {
      sqs.destroy();
      await opened.close();
      await db.end().catch(() => {});
    }
  },
};
