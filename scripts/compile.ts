/**
 * `deno task compile`: builds `dist/masq`, one self-contained binary, with the least permissions baked in.
 *
 * The permissions come from the `masq` task in deno.json, its permission set (`-P=masq`) written out as flags
 * (scripts/permissions.ts; the one list that start, demo, bench, the tests and the Docker image all use), so
 * the binary and the tasks cannot drift apart:
 * - `--allow-net`, `--allow-env` and `--allow-sys` as in the task.
 * - `--allow-read`: the task's absolute paths (key files under /run/secrets and /etc/masq, the web identity
 *   tokens of EKS service accounts) and `$HOME/.aws`. The task's relative paths (data, secrets,
 *   node_modules) are left out: a binary resolves them against whatever directory it is started in, and
 *   needs none of them, because Deno grants read access to the binary's own embedded files (the npm
 *   packages, PGlite's wasm, the demo's sample) itself. `$HOME` is the compiling user's home, fixed at
 *   build time (a binary cannot expand it at run time): the Dockerfile sets it to the runtime user's home.
 *   Run as another user, the SDK simply finds no shared credentials file and uses the rest of its chain
 *   (environment, web identity, container or instance credentials).
 * - `--include data/sample_logins.jsonl`: `masq demo` finds it next to main.ts (`import.meta.url`).
 *
 * `deno compile` downloads its runtime (denort) from dl.deno.land on first use. Offline, that fails: this
 * script says so in one line and exits 2, and never leaves a binary behind. Other failures pass deno's
 * own error through and exit 1. Success prints the path and size.
 */

import { expandedTask } from "./permissions.ts";

const ENTRY = "main.ts";
const OUTPUT = "dist/masq";
const SAMPLE = "data/sample_logins.jsonl";

/**
 * The value of `--<flag>=` in a task's command line, e.g. `flagValue(masqTask, "allow-env")`.
 * Throws when the flag is missing, so a renamed task fails the build instead of weakening it.
 */
export function flagValue(task: string, flag: string): string {
  const m = new RegExp(`(?:^|\\s)--${flag}=(\\S+)`).exec(task);
  if (!m) throw new Error(`the masq task in deno.json has no --${flag}=...`);
  return m[1];
}

/**
 * The arguments of `deno compile` for the `masq` task's command line and the compiling user's home.
 *
 * @example
 * ```ts
 * import { compileArgs, flagValue, isRuntimeDownloadFailure } from "./compile.ts";
 *
 * const masqTask = "deno run --allow-net --allow-env=HOME,PG* --allow-read=data,/run/secrets,$HOME/.aws --allow-sys=osRelease main.ts";
 * flagValue(masqTask, "allow-env"); // "HOME,PG*"
 * compileArgs(masqTask, "/home/me");
 * // ["compile", "--output", "dist/masq", "--no-prompt", "--allow-net", "--allow-env=HOME,PG*",
 * //  "--allow-read=/run/secrets,/home/me/.aws", "--allow-sys=osRelease", "--include", ...]
 * isRuntimeDownloadFailure(
 *   "1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip): " +
 *     "client error (Connect): dns error: failed to lookup address information",
 * ); // true
 * ```
 */
export function compileArgs(masqTask: string, home: string | undefined): string[] {
  const reads = flagValue(masqTask, "allow-read").split(",").flatMap((path) => {
    if (path.startsWith("$HOME/")) return home ? [`${home.replace(/\/+$/, "")}/${path.slice(6)}`] : [];
    return path.startsWith("/") ? [path] : [];
  });
  return [
    "compile",
    "--output",
    OUTPUT,
    "--no-prompt",
    "--allow-net",
    `--allow-env=${flagValue(masqTask, "allow-env")}`,
    `--allow-read=${reads.join(",")}`,
    `--allow-sys=${flagValue(masqTask, "allow-sys")}`,
    "--include",
    SAMPLE,
    ENTRY,
  ];
}

/**
 * True when `deno compile` failed because it could not download its runtime (denort): one line of the
 * error names the runtime or its host together with a network failure (DNS, connect, TLS, timeout).
 * Errors fetching anything else (an npm package, say) are not this.
 */
export function isRuntimeDownloadFailure(stderr: string): boolean {
  const runtime = /denort|dl\.deno\.land/i;
  const network =
    /dns error|failed to lookup address|error sending request|client error \(Connect\)|connection (refused|reset)|network is unreachable|timed out|tcp connect|certificate|\bproxy\b/i;
  return stderr.split("\n").some((line) => runtime.test(line) && network.test(line));
}

async function main(): Promise<number> {
  const config = JSON.parse(await Deno.readTextFile("deno.json"));
  const args = compileArgs(expandedTask(config, "masq"), Deno.env.get("HOME"));
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
