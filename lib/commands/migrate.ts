/** `masq migrate`: the only command that runs DDL (tables, function, view, roles and grants). */
import { createLogger } from "../log.ts";
import { connectDatabase } from "../lifecycle/db.ts";
import { lifecycleSecrets, settingsWithoutHmacKey } from "../lifecycle/keys.ts";
import { DEFAULT_ROLE_PREFIX, migrate as runMigrate, migrateKeystore, roleNames } from "../sink/schema.ts";
import { writerLoginFrom } from "../sink/login.ts";
import { keystoreUrl, separateKeystore } from "../vault_keys.ts";
import type { Command } from "./command.ts";

export const migrate: Command = {
  usage:
    "migrate [--role-prefix P] [--no-token-indexes] [--writer-login NAME]\n                                create or upgrade the schema, the writer/analyst/privacy roles\n                                (and a login for run: password from MASQ_WRITER_PASSWORD[_FILE])",
  flags: {
    "role-prefix": { type: "string" },
    "no-token-indexes": { type: "boolean" },
    "writer-login": { type: "string" },
  },
  settings: true,
  async run(ctx) {
    const config = settingsWithoutHmacKey(ctx.values, ctx.env, ctx.readFile);
    const secrets = lifecycleSecrets(config);
    const log = createLogger({ format: config.logFormat, level: config.logLevel, secrets });
    ctx.useLogger(log, secrets);
    const prefix = typeof ctx.values["role-prefix"] === "string"
      ? ctx.values["role-prefix"]
      : DEFAULT_ROLE_PREFIX;
    const loginName = ctx.values["writer-login"];
    const roles = roleNames(prefix);
    const writerLogin = typeof loginName === "string"
      ? await writerLoginFrom(
        loginName,
        [roles.writer, roles.analyst, roles.privacyOfficer],
        ctx.env,
        ctx.readFile,
      )
      : undefined;
    const client = await connectDatabase(config.databaseUrl, "migrate", ctx.env);
    try {
      const result = await runMigrate(client, {
        rolePrefix: prefix,
        tokenIndexes: ctx.values["no-token-indexes"] !== true,
        ...(writerLogin ? { writerLogin } : {}),
        keystore: !separateKeystore(ctx.env, config.databaseUrl),
      });
      if (writerLogin) {
        log.info("writer login ready: a member of the writer role, its search_path set to this schema", {
          login: writerLogin.name,
          password: writerLogin.verifier ? "set" : "unchanged",
        });
      }
      if (separateKeystore(ctx.env, config.databaseUrl)) {
        // The key store in a database of its own (PII_KEYSTORE_URL): its table, function, roles and grants.
        const ks = await connectDatabase(keystoreUrl(ctx.env, config.databaseUrl), "migrate", ctx.env);
        try {
          await migrateKeystore(ks, { rolePrefix: prefix });
        } finally {
          await ks.end().catch(() => {});
        }
        log.info("key store migrated", { keystore: "PII_KEYSTORE_URL" });
      }
      log.info(
        result.from === result.to ? "schema is up to date; grants re-applied" : "schema migrated",
        { from: result.from, to: result.to, ...result.roles },
      );
      for (const w of result.warnings) log.warn(w);
      const { warnings: _shown, ...summary } = result;
      ctx.print(JSON.stringify({ ...summary, ...(writerLogin ? { writerLogin: writerLogin.name } : {}) }));
      return 0;
    } finally {
      await client.end().catch(() => {});
    }
  },
};
