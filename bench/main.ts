/** `masq bench`: masq against the bare receive+delete ceiling, in one run (see lib/bench.ts). */
import { type BenchMode, runBench } from "../bench.ts";
import { type Ablation, parseAblations } from "../bench/ablation.ts";
import { killAll } from "../bench/child.ts";
import { ConfigError } from "../errors.ts";
import type { Command } from "./command.ts";

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

export const bench: Command = {
  usage:
    "bench [--messages N] [--rounds N] [--processes N] [--memory | --profile DIR | --ablate PARTS]   masq " +
    "against the bare receive+delete ceiling",
  flags: {
    messages: { type: "string" },
    rounds: { type: "string" },
    processes: { type: "string" },
    memory: { type: "boolean" },
    profile: { type: "string" },
    ablate: { type: "string" },
  },
  async run(ctx) {
    const v = ctx.values;
    if (v.memory === true && v.profile !== undefined) {
      throw new ConfigError("--memory / --profile", "choose one of the two modes");
    }
    const mode: BenchMode = v.memory === true ? "memory" : v.profile !== undefined ? "profile" : "compare";
    const profileDir = typeof v.profile === "string" ? v.profile : undefined;
    if (profileDir === "") throw new ConfigError("--profile", "needs a directory to write the profiles to");
    let ablate: Ablation[] | undefined;
    if (v.ablate !== undefined) {
      if (mode !== "compare") throw new ConfigError("--ablate", "takes parts out of the compare rounds only");
      const parsed = parseAblations(String(v.ablate));
      if (typeof parsed === "string") throw new ConfigError("--ablate", parsed);
      ablate = parsed;
    }
    // Interrupted, the bench takes its emulator and consumers down with it, then exits.
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, () => void killAll().finally(() => Deno.exit(130)));
    }
    const result = await runBench({
      log: ctx.log,
      print: (s) => console.error(s),
      env: ctx.env,
      messages: wholeNumber(v, "messages", 10, 1_000_000),
      rounds: wholeNumber(v, "rounds", 1, 20),
      processes: wholeNumber(v, "processes", 1, 8),
      mode,
      ...(profileDir ? { profileDir } : {}),
      ...(ablate ? { ablate } : {}),
    });
    ctx.print(JSON.stringify(result));
    return 0;
  },
};
