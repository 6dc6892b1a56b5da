/**
 * `masq vault-keygen` (lib/commands/vault_keygen.ts) over the real CLI: two files, the private one mode 600,
 * never overwritten, the private key never on stdout unless asked.
 */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { parseOfficerPrivateKeys, parseOfficerPublicKey } from "../../lib/seal.ts";
import { collect, MAIN, ROOT, spawnWatched } from "../support/processes.ts";

function keygen(dir: string, args: string[] = []) {
  return collect(
    spawnWatched(Deno.execPath(), [
      "run",
      "--no-prompt",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      "--allow-env=AWS_*,PII_*,MASQ_*,NO_COLOR",
      MAIN,
      "vault-keygen",
      ...args,
    ], { cwd: ROOT, clearEnv: true, env: { NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "" } }),
  );
}

Deno.test("masq vault-keygen writes the key pair (private mode 600), never overwrites it, and prints no private key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "masq-keygen-" });
  try {
    const res = await keygen(dir, ["--out", dir]);
    assertEquals(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout.trim());
    const privateText = await Deno.readTextFile(`${dir}/vault-private.key`);
    const publicText = await Deno.readTextFile(`${dir}/vault-public.key`);
    assertEquals((await Deno.stat(`${dir}/vault-private.key`)).mode! & 0o777, 0o600);
    assertEquals((await parseOfficerPublicKey(publicText, "p")).keyId, out.key_id);
    assertEquals((await parseOfficerPrivateKeys(privateText, "k")).current.keyId, out.key_id);
    const secret = privateText.split(" ")[3];
    assert(!(res.stdout + res.stderr).includes(secret), "the private key is not printed");
    const again = await keygen(dir, ["--out", dir]);
    assertEquals(again.code, 2);
    assertMatch(again.stderr, /exists already \(never overwritten\)/);
    assertEquals(await Deno.readTextFile(`${dir}/vault-private.key`), privateText);
    const piped = await keygen(dir, ["--private-to-stdout"]);
    assertEquals(piped.code, 0, piped.stderr);
    assertMatch(piped.stdout, /^masq-vault-public-key .*\nmasq-vault-private-key /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
