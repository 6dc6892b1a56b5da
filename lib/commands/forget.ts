/**
 * `masq forget`: erase a person (`--user-id`) or one vault entry (`--field --token`), logged like recover;
 * prints what was removed as JSON.
 */
import { ConfigError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { connectDatabase } from "../lifecycle/db.ts";
import { forgetToken, forgetUser } from "../lifecycle/forget.ts";
import { lifecycleSecrets, settingsWithoutHmacKey } from "../lifecycle/keys.ts";
import { osUser, requireReason } from "../lifecycle/access.ts";
import { parseField, parseToken } from "../lifecycle/recover.ts";
import { requireKeystore, requireSchema } from "../sink/schema.ts";
import { keystoreUrl, separateKeystore } from "../vault_keys.ts";
import type { Command } from "./command.ts";

export const forget: Command = {
  usage:
    "forget (--user-id ID | --field F --token T) --reason R\n                                erase a person or one vault entry (logged)",
  flags: {
    "user-id": { type: "string" },
    field: { type: "string" },
    token: { type: "string" },
    reason: { type: "string" },
  },
  settings: true,
  async run(ctx) {
    const userId = ctx.values["user-id"];
    const byUser = typeof userId === "string";
    const byToken = ctx.values.field !== undefined || ctx.values.token !== undefined;
    if (byUser === byToken) {
      throw new ConfigError("usage", "give either --user-id, or --field with --token (see masq --help)");
    }
    if (byUser && (userId.trim() === "" || [...userId].length > 128)) {
      throw new ConfigError("--user-id", "must be 1 to 128 characters");
    }
    // user_logins cannot hold such an id, and an encoder would turn it into another one.
    if (byUser && (!userId.isWellFormed() || userId.includes("\u0000"))) {
      throw new ConfigError("--user-id", "is not well-formed Unicode text (a lone surrogate or a NUL)");
    }
    const reason = requireReason(ctx.values.reason, "forget");
    const field = byToken ? parseField(ctx.values.field) : undefined;
    const token = byToken ? parseToken(String(ctx.values.token ?? ""), "--token") : undefined;
    const config = settingsWithoutHmacKey(ctx.values, ctx.env, ctx.readFile);
    const secrets = lifecycleSecrets(config);
    const log = createLogger({ format: config.logFormat, level: config.logLevel, secrets });
    ctx.useLogger(log, secrets);
    const client = await connectDatabase(config.databaseUrl, "forget", ctx.env);
    const who = { osUser: osUser(ctx.env), reason };
    try {
      await requireSchema(client);
      if (byUser) {
        // The key store in a database of its own: the person's keys are destroyed there.
        const ks = separateKeystore(ctx.env, config.databaseUrl)
          ? await connectDatabase(keystoreUrl(ctx.env, config.databaseUrl), "forget", ctx.env)
          : undefined;
        let removed;
        try {
          if (ks) await requireKeystore(ks);
          removed = await forgetUser(client, userId, who, ctx.env, ks);
        } finally {
          await ks?.end().catch(() => {});
        }
        log.info("forgot a user", { ...removed });
        ctx.print(JSON.stringify(removed));
      } else {
        const removed = await forgetToken(client, field!, token!, who);
        log.info("forgot a vault entry", { field, ...removed });
        ctx.print(JSON.stringify(removed));
      }
      return 0;
    } finally {
      await client.end().catch(() => {});
    }
  },
};
