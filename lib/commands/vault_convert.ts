/**
 * `masq vault-convert`: converts the vault under the old symmetric key (PII_VAULT_KEY) to the sealed vault,
 * in batches, each committed; resumable (run it again after a crash) and idempotent (lib/lifecycle/convert.ts).
 * Needs the old key, the privacy officer's key (PII_VAULT_PRIVATE_KEY_FILE, or just its public half), the
 * HMAC key masq run uses (the seals' MACs) and the key store. When it reports `left: 0`, PII_VAULT_KEY
 * opens nothing any more and can be retired.
 */
import { ConfigError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { connectDatabase } from "../lifecycle/db.ts";
import {
  lifecycleSecrets,
  officerSecrets,
  requireVaultKey,
  settingsWithoutHmacKey,
} from "../lifecycle/keys.ts";
import { optionalReason, osUser } from "../lifecycle/access.ts";
import { convertVault } from "../lifecycle/convert.ts";
import { createSubjectKeyStore } from "../keystore.ts";
import { sealMacKey } from "../seal.ts";
import { checkKeyStrength, resolveHmacKey, resolveVaultKeyId } from "../secrets.ts";
import { requireKeystore, requireSchema } from "../sink/schema.ts";
import { createVaultCipher } from "../vault.ts";
import {
  keystoreUrl,
  resolveOfficerPrivateKeys,
  resolveOfficerPublicKey,
  separateKeystore,
} from "../vault_keys.ts";
import type { Command } from "./command.ts";

export const vaultConvert: Command = {
  usage:
    "vault-convert [--batch N] [--reason R]\n                                seal the vault's entries under the old PII_VAULT_KEY (resumable)",
  flags: { batch: { type: "string" }, reason: { type: "string" } },
  settings: true,
  async run(ctx) {
    const batchText = ctx.values.batch ?? "500";
    const batchSize = Number(batchText);
    if (!/^\d+$/.test(String(batchText)) || batchSize < 1 || batchSize > 10_000) {
      throw new ConfigError("--batch", "must be a whole number from 1 to 10000");
    }
    const reason = optionalReason(ctx.values.reason, "vault conversion to sealed entries");
    const config = settingsWithoutHmacKey(ctx.values, ctx.env, ctx.readFile);
    const vaultKey = requireVaultKey(config, "vault-convert");
    const hmacKey = resolveHmacKey(ctx.env, ctx.readFile);
    checkKeyStrength(hmacKey);
    const secrets = [...lifecycleSecrets(config), hmacKey, ...officerSecrets(ctx.env, ctx.readFile)];
    const log = createLogger({ format: config.logFormat, level: config.logLevel, secrets });
    ctx.useLogger(log, secrets);
    const officer = (await resolveOfficerPublicKey(ctx.env, ctx.readFile)) ??
      (await resolveOfficerPrivateKeys(ctx.env, ctx.readFile))?.ring.current;
    if (officer === undefined) {
      throw new ConfigError(
        "PII_VAULT_PUBLIC_KEY",
        "not set; `masq vault-convert` seals to the privacy officer's key (PII_VAULT_PUBLIC_KEY_FILE or PII_VAULT_PRIVATE_KEY_FILE)",
      );
    }
    const legacy = await createVaultCipher(vaultKey, resolveVaultKeyId(ctx.env));
    const client = await connectDatabase(config.databaseUrl, "vault-convert", ctx.env);
    const separate = separateKeystore(ctx.env, config.databaseUrl);
    let ks = client;
    try {
      await requireSchema(client);
      if (separate) {
        ks = await connectDatabase(keystoreUrl(ctx.env, config.databaseUrl), "vault-convert", ctx.env);
      }
      await requireKeystore(ks);
      const macKey = sealMacKey(hmacKey);
      const subjects = createSubjectKeyStore(ks, officer, macKey);
      const result = await convertVault(client, {
        legacy,
        officer,
        subjects,
        macKey,
        hmacKeyId: config.hmacKeyId,
        batchSize,
        who: { osUser: osUser(ctx.env), reason },
        env: ctx.env,
        onProgress: (done, total) => log.info("vault-convert progress", { done, total }),
      });
      log.info(
        result.left === 0
          ? "the vault is sealed: PII_VAULT_KEY opens nothing any more and can be retired"
          : "entries are left under the old key: run vault-convert again",
        { ...result },
      );
      ctx.print(JSON.stringify(result));
      return result.left === 0 ? 0 : 1;
    } finally {
      if (ks !== client) await ks.end().catch(() => {});
      await client.end().catch(() => {});
    }
  },
};
