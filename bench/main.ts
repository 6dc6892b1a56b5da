/**
 * `deno task bench`: masq against the bare receive+delete ceiling, in one run (bench/runner.ts). A program
 * of its own, apart from the masq CLI: the tables go to stderr, the figures as one JSON line to stdout.
 * Exit codes as masq's: 0 done, 2 bad usage, 1 fatal runtime error.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError, errorMessage, exitCodeFor } from "../lib/errors.ts";
import { createLogger } from "../lib/log.ts";
import { type Ablation, parseAblations } from "./ablation.ts";
import { killAll } from "./child.ts";
import { type BenchMode, type BenchVault, runBench } from "./runner.ts";

/** The text of `deno task bench --help`. */
export const USAGE = `deno task bench: masq against the bare receive+delete ceiling

Usage:
  deno task bench [--messages N] [--rounds N] [--processes N] [--memory | --profile DIR | --ablate PARTS]

  --messages N     messages per run, 10 to 1000000 (default 50000; with --memory, 10 N as well)
  --rounds N       ceiling/masq round pairs, 1 to 20 (default 3)
  --processes N    consumer processes on the one queue, 1 to 8 (default 1; over 2 need BENCH_DATABASE_URL)
  --memory         peak RSS with N and with 10 N messages queued
  --profile DIR    one CPU and heap profile of each consumer, written to DIR
  --ablate PARTS   also measure masq without sink and/or transform (comma-separated, in order)
  --vault MODE     masq keeps originals: none (default), symmetric (a vault key) or sealed (docs/vault.md)

BENCH_DATABASE_URL: the PostgreSQL to write into (a fresh schema per run); embedded PGlite when unset.
The last line on stdout is the figures as JSON.`;

const FLAGS = {
  messages: { type: "string" },
  rounds: { type: "string" },
  processes: { type: "string" },
  memory: { type: "boolean" },
  profile: { type: "string" },
  ablate: { type: "string" },
  vault: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function wholeNumber(
  values: Record<string, unknown>,
  flag: string,
  min: number,
  max: number,
): number | undefined {
  const text = values[flag];
  if (text === undefined) return undefined;
  const n = Number(text);
  if (typeof text !== "string" || !/^\d+$/.test(text) || n < min || n > max) {
    throw new ConfigError(`--${flag}`, `${JSON.stringify(text)} is not a whole number from ${min} to ${max}`);
  }
  return n;
}

/** What the flags ask for: the options of runBench() that come from the command line. */
export interface BenchArgs {
  help: boolean;
  mode: BenchMode;
  messages?: number;
  rounds?: number;
  processes?: number;
  profileDir?: string;
  ablate?: Ablation[];
  vault?: BenchVault;
}

/**
 * Parses the bench's flags strictly; a flag it does not know, a stray argument or a bad value is a
 * ConfigError (exit 2) naming the flag.
 *
 * @example
 * ```ts
 * import { parseBenchArgs } from "./main.ts";
 * parseBenchArgs(["--messages", "2000", "--rounds", "1"]);
 * // { help: false, mode: "compare", messages: 2000, rounds: 1 }
 * ```
 */
export function parseBenchArgs(args: readonly string[]): BenchArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: FLAGS, allowPositionals: true, strict: true });
  } catch (err) {
    const msg = (err as Error).message.split("\n")[0].replace(/\. To specify.*$/, "");
    throw new ConfigError("usage", `${msg} (see deno task bench --help)`);
  }
  const v = parsed.values;
  if (parsed.positionals.length > 0) {
    throw new ConfigError(
      "usage",
      `unexpected argument ${JSON.stringify(parsed.positionals[0])} (see deno task bench --help)`,
    );
  }
  if (v.memory === true && v.profile !== undefined) {
    throw new ConfigError("--memory / --profile", "choose one of the two modes");
  }
  const mode: BenchMode = v.memory === true ? "memory" : v.profile !== undefined ? "profile" : "compare";
  if (v.profile === "") throw new ConfigError("--profile", "needs a directory to write the profiles to");
  let ablate: Ablation[] | undefined;
  if (v.ablate !== undefined) {
    if (mode !== "compare") throw new ConfigError("--ablate", "takes parts out of the compare rounds only");
    const parts = parseAblations(v.ablate);
    if (typeof parts === "string") throw new ConfigError("--ablate", parts);
    ablate = parts;
  }
  if (v.vault !== undefined && !["none", "symmetric", "sealed"].includes(String(v.vault))) {
    throw new ConfigError("--vault", "must be none, symmetric or sealed");
  }
  const messages = wholeNumber(v, "messages", 10, 1_000_000);
  const rounds = wholeNumber(v, "rounds", 1, 20);
  const processes = wholeNumber(v, "processes", 1, 8);
  return {
    help: v.help === true,
    mode,
    ...(messages !== undefined ? { messages } : {}),
    ...(rounds !== undefined ? { rounds } : {}),
    ...(processes !== undefined ? { processes } : {}),
    ...(v.profile !== undefined ? { profileDir: v.profile } : {}),
    ...(ablate ? { ablate } : {}),
    ...(v.vault !== undefined ? { vault: v.vault as BenchVault } : {}),
  };
}

/** Environment lookup that treats a variable we may not read as unset. */
function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

async function main(args: string[]): Promise<number> {
  const log = createLogger({ format: env("MASQ_LOG_FORMAT") === "json" ? "json" : "text" });
  try {
    const opts = parseBenchArgs(args);
    if (opts.help) {
      console.log(USAGE);
      return 0;
    }
    // Interrupted, the bench takes its emulator and consumers down with it, then exits.
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, () => void killAll().finally(() => Deno.exit(130)));
    }
    const { help: _help, ...options } = opts;
    const result = await runBench({ log, print: (s) => console.error(s), env, ...options });
    console.log(JSON.stringify(result));
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`masq: ${err.message}`);
    } else {
      if (env("MASQ_DEBUG_STACK")) console.error(err instanceof Error ? err.stack ?? "" : String(err));
      log.error("fatal", { error: errorMessage(err) });
    }
    return exitCodeFor(err);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
