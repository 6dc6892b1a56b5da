/** `masq bench`: masq against the bare receive+delete ceiling, in one run. */
import { runBench } from "../bench.ts";
import { ConfigError } from "../errors.ts";
import type { Command } from "./command.ts";

export const bench: Command = {
  usage: "bench [--messages N]     throughput against the bare receive+delete ceiling",
  flags: { messages: { type: "string" } },
  async run(ctx) {
    const text = ctx.values.messages;
    const n = typeof text === "string" ? Number(text) : undefined;
    if (n !== undefined && (!/^\d+$/.test(String(text)) || n < 10 || n > 1_000_000)) {
      throw new ConfigError("--messages", `${JSON.stringify(text)} is not a whole number from 10 to 1000000`);
    }
    const result = await runBench({
      log: ctx.log,
      print: (s) => console.error(s),
      messages: n,
      env: ctx.env,
    });
    ctx.print(JSON.stringify(result));
    return 0;
  },
};
