/**
 * `masq redrive`: after the producer's bug is fixed, send dead-lettered messages back to the source queue,
 * each with its original body restored from the encrypted copy (needs the vault key). Prints a JSON summary
 * with how many were redriven and how many were left, and why.
 */
import { ConfigError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { connectDatabase } from "../lifecycle/db.ts";
import {
  lifecycleSecrets,
  osUser,
  requireVaultKey,
  resolveVaultKeyId,
  settingsWithoutHmacKey,
} from "../lifecycle/keys.ts";
import { redrive as runRedrive } from "../lifecycle/redrive.ts";
import { requireSchema } from "../sink/schema.ts";
import { createSqsClient } from "../source/sqs.ts";
import { createVaultCipher } from "../vault.ts";
import type { Command } from "./command.ts";

export const redrive: Command = {
  usage:
    "redrive [--dry-run] [--max N] [--reason R]\n                                replay dead letters to the source queue (vault key)",
  flags: { "dry-run": { type: "boolean" }, max: { type: "string" }, reason: { type: "string" } },
  settings: true,
  async run(ctx) {
    const maxText = ctx.values.max;
    const max = maxText === undefined ? Number.MAX_SAFE_INTEGER : Number(maxText);
    if (maxText !== undefined && (!/^\d+$/.test(String(maxText)) || max < 1)) {
      throw new ConfigError("--max", `${JSON.stringify(maxText)} is not a whole number of at least 1`);
    }
    const reason = typeof ctx.values.reason === "string" && ctx.values.reason.trim() !== ""
      ? ctx.values.reason.trim()
      : "redrive of dead-lettered messages";
    const config = settingsWithoutHmacKey(ctx.values, ctx.env, ctx.readFile);
    const key = requireVaultKey(config, "redrive");
    const secrets = lifecycleSecrets(config);
    const log = createLogger({ format: config.logFormat, level: config.logLevel, secrets });
    ctx.useLogger(log, secrets);
    const vault = await createVaultCipher(key, resolveVaultKeyId(ctx.env));
    const db = await connectDatabase(config.databaseUrl, "redrive");
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
        vault,
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
          `${result.left.undecryptable} dead letters do not decrypt under vault key ${vault.keyId}: wrong PII_VAULT_KEY?`,
        );
        return 1;
      }
      return 0;
    } finally {
      sqs.destroy();
      await db.end().catch(() => {});
    }
  },
};
