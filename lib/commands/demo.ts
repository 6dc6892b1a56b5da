/** `masq demo`: the whole pipeline on an embedded SQS and PostgreSQL, with nothing installed but Deno. */
import { runDemo } from "../demo.ts";
import type { Command } from "./command.ts";

export const demo: Command = {
  usage: "demo                     the whole pipeline on an embedded SQS and PostgreSQL",
  async run(ctx) {
    const sample = new URL("../../data/sample_logins.jsonl", import.meta.url);
    ctx.print(JSON.stringify(await runDemo({ log: ctx.log, print: ctx.print, samplePath: sample.pathname })));
    return 0;
  },
};
