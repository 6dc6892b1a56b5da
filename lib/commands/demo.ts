/**
 * `masq demo`: the whole pipeline on an embedded SQS and PostgreSQL, with nothing installed but Deno. The
 * demo (lib/demo.ts: fauxqs and PGlite) is imported only when asked for, so that no other command loads
 * an emulator; the specifier is a literal, so that `deno compile` still embeds it.
 */
import type { Command } from "./command.ts";

export const demo: Command = {
  usage: "demo                     the whole pipeline on an embedded SQS and PostgreSQL",
  async run(ctx) {
    const { runDemo } = await import("../demo.ts");
    const sample = new URL("../../data/sample_logins.jsonl", import.meta.url);
    ctx.print(JSON.stringify(await runDemo({ log: ctx.log, print: ctx.print, samplePath: sample.pathname })));
    return 0;
  },
};
