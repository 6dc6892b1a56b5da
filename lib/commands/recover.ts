/**
 * `masq recover`: the original behind a token, for the few who may see it. Needs the vault key and a
 * reason; every lookup is committed to pii_access_log before the database hands out its ciphertext. The
 * originals go to stdout (the one place masq prints them, on request); the log names only tokens.
 */
import { ConfigError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { connectDatabase } from "../lifecycle/db.ts";
import {
  lifecycleSecrets,
  officerSecrets,
  openVaultReader,
  settingsWithoutHmacKey,
} from "../lifecycle/keys.ts";
import { osUser, requireReason } from "../lifecycle/access.ts";
import { parseField, parseToken, recoverTokens } from "../lifecycle/recover.ts";
import { requireSchema } from "../sink/schema.ts";
import type { Command } from "./command.ts";

/** Tokens from stdin, one a line (blank lines skipped). */
async function tokensFromStdin(): Promise<string[]> {
  const text = await new Response(Deno.stdin.readable).text();
  const out: string[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() !== "") out.push(parseToken(line, `stdin line ${i + 1}`));
  });
  return out;
}

export const recover: Command = {
  usage:
    "recover --field ip|device_id (--token T | stdin) --reason R\n                                print originals (vault key; every lookup logged)",
  flags: { field: { type: "string" }, token: { type: "string" }, reason: { type: "string" } },
  settings: true,
  async run(ctx) {
    const field = parseField(ctx.values.field);
    const reason = requireReason(ctx.values.reason, "recover");
    const config = settingsWithoutHmacKey(ctx.values, ctx.env, ctx.readFile);
    const secrets = [...lifecycleSecrets(config), ...officerSecrets(ctx.env, ctx.readFile)];
    const log = createLogger({ format: config.logFormat, level: config.logLevel, secrets });
    ctx.useLogger(log, secrets);
    const single = typeof ctx.values.token === "string";
    const tokens = single ? [parseToken(ctx.values.token as string, "--token")] : await tokensFromStdin();
    if (tokens.length === 0) {
      throw new ConfigError("--token", "no token given (--token, or one per line on stdin)");
    }
    const client = await connectDatabase(config.databaseUrl, "recover", ctx.env);
    let closeReader = () => Promise.resolve();
    try {
      await requireSchema(client);
      const opened = await openVaultReader(config, ctx.env, ctx.readFile, "recover", client);
      closeReader = opened.close;
      const answers = await recoverTokens(client, opened.reader, field, tokens, {
        osUser: osUser(ctx.env),
        reason,
      });
      const missing = answers.filter((a) => a.original === undefined).length;
      for (const a of answers) {
        if (single) {
          if (a.original !== undefined) ctx.print(a.original);
        } else ctx.print(`${a.token}\t${a.original ?? ""}`);
      }
      const refused = answers.filter((a) => a.refused !== undefined);
      const erased = answers.filter((a) => a.erased).length;
      log.info("recovered", {
        field,
        tokens: answers.length,
        found: answers.length - missing,
        missing,
        erased,
      });
      for (const a of refused) {
        log.error(
          `refused: the vault entry of ${field} token ${
            a.token.slice(0, 12)
          }… ${a.refused}; nothing returned for it`,
        );
      }
      if (refused.length > 0) return 1;
      if (erased > 0) {
        log.warn(
          `${erased} of ${answers.length} ${field} tokens were erased (their subject's key is destroyed)`,
        );
      }
      if (missing > 0) {
        log.error(
          `${missing} of ${answers.length} ${field} tokens have no vault entry (never vaulted, or forgotten)`,
        );
        return 1;
      }
      return 0;
    } finally {
      await closeReader();
      await client.end().catch(() => {});
    }
  },
};
