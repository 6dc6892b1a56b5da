/**
 * `masq rekey`: re-tokenise existing rows under a new HMAC key, from the vault, in batches; resumable
 * (run it again after a crash). Progress on stderr: a live line on a terminal, else a log line every few
 * seconds. Switch `masq run` to the new key first, so that no new rows arrive under the old one.
 */
import { checkKeyStrength, isKeyId, readKeyFile, resolveHmacKey, resolveVaultKeyId } from "../secrets.ts";
import { sealMacKey } from "../seal.ts";
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
import { rekey as runRekey } from "../lifecycle/rekey.ts";
import { requireSchema } from "../sink/schema.ts";
import { createVaultCipher, parseVaultKey, toBase64 } from "../vault.ts";
import type { Command } from "./command.ts";

const encoder = new TextEncoder();

/** Whether `key` is the vault key: its base64 text (any spelling), its hex text or its very bytes. */
function isVaultKey(key: string, vaultKey: Uint8Array): boolean {
  const same = (bytes: Uint8Array) =>
    bytes.length === vaultKey.length && bytes.every((b, i) => b === vaultKey[i]);
  let decoded: Uint8Array | undefined;
  try {
    decoded = parseVaultKey(key);
  } catch { /* not base64 of 32 bytes */ }
  const hex = Array.from(vaultKey, (b) => b.toString(16).padStart(2, "0")).join("");
  return (decoded !== undefined && same(decoded)) || same(encoder.encode(key)) ||
    key.trim().toLowerCase() === hex || key.trim() === toBase64(vaultKey);
}

export const rekey: Command = {
  usage:
    "rekey --to-key-file F --to-key-id ID [--batch N] [--reason R]\n                                re-tokenise rows under a new HMAC key (vault key)",
  flags: {
    "to-key-file": { type: "string" },
    "to-key-id": { type: "string" },
    batch: { type: "string" },
    reason: { type: "string" },
  },
  settings: true,
  async run(ctx) {
    const file = ctx.values["to-key-file"];
    if (typeof file !== "string" || file === "") {
      throw new ConfigError(
        "--to-key-file",
        "required: the file holding the new HMAC key (never the key itself)",
      );
    }
    const keyId = ctx.values["to-key-id"];
    if (typeof keyId !== "string" || !isKeyId(keyId)) {
      throw new ConfigError("--to-key-id", "required: the new key's id (1-32 of A-Z a-z 0-9 . _ -), e.g. k2");
    }
    const batchText = ctx.values.batch ?? "500";
    const batchSize = Number(batchText);
    if (!/^\d+$/.test(String(batchText)) || batchSize < 1 || batchSize > 10_000) {
      throw new ConfigError("--batch", "must be a whole number from 1 to 10000");
    }
    const reason = optionalReason(ctx.values.reason, `HMAC key rotation to ${keyId}`);
    const newKey = readKeyFile(ctx.readFile, file, "--to-key-file").replace(/\r?\n$/, "");
    if (newKey === "") throw new ConfigError("--to-key-file", "names an empty file");
    if (keyId === newKey.trim()) {
      throw new ConfigError("--to-key-id", "is the new key itself; give the key a name (e.g. k2)");
    }
    const config = settingsWithoutHmacKey(ctx.values, ctx.env, ctx.readFile);
    // The sealed vault (the officer's private key), else the old symmetric key.
    const sealed = (ctx.env("PII_VAULT_PRIVATE_KEY") ?? "") !== "" ||
      (ctx.env("PII_VAULT_PRIVATE_KEY_FILE") ?? "") !== "";
    const vaultKey = sealed ? config.vaultKey : requireVaultKey(config, "rekey");
    if (vaultKey && isVaultKey(newKey, vaultKey)) {
      throw new ConfigError(
        "--to-key-file",
        "holds the vault key; the HMAC key must be a different secret (openssl rand -hex 32)",
      );
    }
    checkKeyStrength(newKey, "--to-key-file");
    const secrets = [newKey, ...lifecycleSecrets(config), ...officerSecrets(ctx.env, ctx.readFile)];
    const log = createLogger({ format: config.logFormat, level: config.logLevel, secrets });
    ctx.useLogger(log, secrets);
    const vault = vaultKey && await createVaultCipher(vaultKey, resolveVaultKeyId(ctx.env));
    const live = Deno.stderr.isTerminal();
    let lastLog = 0;
    const started = Date.now();
    const onProgress = (done: number, total: number) => {
      const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
      const rate = Math.round(done / Math.max(0.001, (Date.now() - started) / 1000));
      if (live) {
        Deno.stderr.writeSync(
          encoder.encode(`\rrekey: ${done}/${total} vault entries (${pct}%), ${rate}/s   `),
        );
      } else if (Date.now() - lastLog >= 2_000 || done === total) {
        lastLog = Date.now();
        log.info("rekey progress", { done, total, percent: pct, per_second: rate });
      }
    };
    const client = await connectDatabase(config.databaseUrl, "rekey", ctx.env);
    let closeReader = () => Promise.resolve();
    try {
      await requireSchema(client);
      let sealedVault;
      if (sealed) {
        // Opening needs the old HMAC key too (PII_HMAC_KEY / PII_HMAC_KEY_ID): each entry's MAC is under it.
        const opened = await openVaultReader(config, ctx.env, ctx.readFile, "rekey", client);
        closeReader = opened.close;
        if ("entry" in opened.reader) {
          const oldKey = resolveHmacKey(ctx.env, ctx.readFile);
          sealedVault = {
            unsealer: opened.reader,
            officer: opened.officer!,
            keystore: opened.keystore,
            oldMacKey: sealMacKey(oldKey),
          };
        }
      }
      const result = await runRekey(client, {
        newKey,
        newKeyId: keyId,
        ...(vault ? { vault } : {}),
        ...(sealedVault ? { sealed: sealedVault } : {}),
        batchSize,
        who: { osUser: osUser(ctx.env), reason },
        env: ctx.env,
        onProgress,
      });
      if (live) Deno.stderr.writeSync(encoder.encode("\n"));
      const { maskedIp, maskedDeviceId } = result.rowsWithoutOriginal;
      if (maskedIp + maskedDeviceId > 0) {
        log.warn("some rows keep tokens of an older key: the vault has no original for them", {
          masked_ip: maskedIp,
          masked_device_id: maskedDeviceId,
        });
      }
      ctx.print(JSON.stringify({ keyId, ...result }));
      return 0;
    } finally {
      await closeReader();
      await client.end().catch(() => {});
    }
  },
};
