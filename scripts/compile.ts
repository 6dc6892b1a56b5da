/**
 * `deno task compile`: builds `dist/masq`, one self-contained binary, with the least permissions baked in.
 *
 * - `--allow-net`, and `--allow-env` / `--allow-sys` copied from the `start` task in deno.json, so the binary
 *   and the task cannot drift apart.
 * - `--allow-read` only where key files and AWS shared credentials live: /run/secrets, /etc/masq and
 *   `$HOME/.aws`. `$HOME` is the compiling user's home, fixed at build time (a binary cannot expand it at
 *   run time); run as another user, the SDK simply finds no shared credentials file and uses the rest of
 *   its chain (environment, container or instance credentials). The binary's own embedded files (the npm
 *   packages, PGlite's wasm, the demo's sample) need no flag: Deno grants read access to them itself.
 * - `--include data/sample_logins.jsonl`: `masq demo` finds it next to main.ts (`import.meta.url`).
 *
 * `deno compile` downloads its runtime (denort) from dl.deno.land on first use. Offline, that fails: this
 * script says so in one line and exits 2, and never leaves a binary behind. Other failures pass deno's
 * own error through and exit 1. Success prints the path and size.
 */

const ENTRY = "main.ts";
const OUTPUT = "dist/masq";
const SAMPLE = "data/sample_logins.jsonl";
const KEY_DIRS = ["/run/secrets", "/etc/masq"];

/**
 * The value of `--<flag>=` in a task's command line, e.g. `flagValue(start, "allow-env")`.
 * Throws when the flag is missing, so a renamed task fails the build instead of weakening it.
 *
 * @example
 * ```ts
 * import { flagValue } from "./compile.ts";
 *
 * flagValue("deno run --allow-env=HOME,PG* main.ts run", "allow-env"); // "HOME,PG*"
 * ```
 */
export function flagValue(task: string, flag: string): string {
  const m = new RegExp(`(?:^|\\s)--${flag}=(\\S+)`).exec(task);
  if (!m) throw new Error(`the start task in deno.json has no --${flag}=...`);
  return m[1];
}

/**
 * The arguments of `deno compile` for the `start` task's command line and the compiling user's home.
 *
 * @example
 * ```ts
 * import { compileArgs } from "./compile.ts";
 *
 * const startTask = "deno run --allow-net --allow-env=HOME,PG* --allow-sys=osRelease main.ts run";
 * compileArgs(startTask, "/home/me");
 * // ["compile", "--output", "dist/masq", "--allow-net", "--allow-env=HOME,PG*",
 * //  "--allow-read=/run/secrets,/etc/masq,/home/me/.aws", "--allow-sys=osRelease", "--include", ...]
 * ```
 */
export function compileArgs(startTask: string, home: string | undefined): string[] {
  const reads = home ? [...KEY_DIRS, `${home.replace(/\/+$/, "")}/.aws`] : KEY_DIRS;
  return [
    "compile",
    "--output",
    OUTPUT,
    "--allow-net",
    `--allow-env=${flagValue(startTask, "allow-env")}`,
    `--allow-read=${reads.join(",")}`,
    `--allow-sys=${flagValue(startTask, "allow-sys")}`,
    "--include",
    SAMPLE,
    ENTRY,
  ];
}

/**
 * True when `deno compile` failed because it could not download its runtime (denort): one line of the
 * error names the runtime or its host together with a network failure (DNS, connect, TLS, timeout).
 * Errors fetching anything else (an npm package, say) are not this.
 *
 * @example
 * ```ts
 * import { isRuntimeDownloadFailure } from "./compile.ts";
 *
 * isRuntimeDownloadFailure(
 *   "1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip): " +
 *     "client error (Connect): dns error: failed to lookup address information",
 * ); // true
 * ```
 */
export function isRuntimeDownloadFailure(stderr: string): boolean {
  const runtime = /denort|dl\.deno\.land/i;
  const network =
    /dns error|failed to lookup address|error sending request|client error \(Connect\)|connection (refused|reset)|network is unreachable|timed out|tcp connect|certificate|\bproxy\b/i;
  return stderr.split("\n").some((line) => runtime.test(line) && network.test(line));
}

async function main(): Promise<number> {
  const config = JSON.parse(await Deno.readTextFile("deno.json"));
  const args = compileArgs(config.tasks.start, Deno.env.get("HOME"));
  await Deno.mkdir("dist", { recursive: true });

  // NO_COLOR: plain error text, both for matching it and for passing it through.
  const out = await new Deno.Command("deno", {
    args,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);

  if (!out.success) {
    if (isRuntimeDownloadFailure(text)) {
      console.error(
        "compile: deno compile needs to download the Deno runtime (denort) and this machine is offline; " +
          "run deno task compile on a connected machine (or set DENORT_BIN to a denort of this Deno version)",
      );
      return 2;
    }
    console.error(text.trimEnd());
    return 1;
  }
  // deno compile writes to a temporary file and renames it, so a successful exit means a whole binary.
  const { size } = await Deno.stat(OUTPUT);
  console.log(`compile: ${OUTPUT} (${(size / 1048576).toFixed(1)} MiB)`);
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main());
}
