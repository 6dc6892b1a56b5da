/**
 * `masq vault-keygen`: makes the privacy officer's key pair for the sealed vault (lib/seal.ts):
 * `<dir>/vault-public.key` (for masq run: PII_VAULT_PUBLIC_KEY_FILE) and `<dir>/vault-private.key`, mode 600
 * (for the privacy officer's commands only: PII_VAULT_PRIVATE_KEY_FILE). Existing files are never
 * overwritten. stdout gets the key id and the public key; the private key only with --private-to-stdout.
 */
import { join } from "node:path";
import { ConfigError, errorMessage } from "../errors.ts";
import { generateOfficerKeys } from "../seal.ts";
import type { Command } from "./command.ts";

export const vaultKeygen: Command = {
  usage:
    "vault-keygen [--out DIR] [--private-to-stdout]\n                                make the privacy officer's vault key pair (public half for run)",
  flags: { out: { type: "string" }, "private-to-stdout": { type: "boolean" } },
  async run(ctx) {
    const pair = await generateOfficerKeys();
    if (ctx.values["private-to-stdout"] === true) {
      if (ctx.values.out !== undefined) {
        throw new ConfigError("--out", "give --out or --private-to-stdout, not both");
      }
      ctx.print(pair.publicText.trimEnd());
      ctx.print(pair.privateText.trimEnd());
      return 0;
    }
    const dir = typeof ctx.values.out === "string" ? ctx.values.out : "secrets";
    const write = async (name: string, text: string, mode: number) => {
      const path = join(dir, name);
      try {
        await Deno.writeTextFile(path, text, { createNew: true, mode });
        await Deno.chmod(path, mode); // the umask may have taken bits away, never added: set exactly
      } catch (err) {
        const why = err instanceof Deno.errors.AlreadyExists
          ? "exists already (never overwritten)"
          : errorMessage(err);
        throw new ConfigError("--out", `cannot write ${path}: ${why}`);
      }
      return path;
    };
    const priv = await write("vault-private.key", pair.privateText, 0o600);
    const pub = await write("vault-public.key", pair.publicText, 0o644);
    ctx.print(JSON.stringify({ key_id: pair.keyId, public_key_file: pub, private_key_file: priv }));
    return 0;
  },
};
