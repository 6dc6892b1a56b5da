/** `masq run`: consume the queue into PostgreSQL; the summary is the last line of stdout. */
import { buildConfig, secretsOf } from "../config.ts";
import { createLogger } from "../log.ts";
import { runMasq } from "../run.ts";
import type { Command } from "./command.ts";

export const run: Command = {
  usage: "run [--follow] [flags]   consume the queue into user_logins; exit once it is drained",
  flags: { follow: { type: "boolean" } },
  settings: true,
  async run(ctx) {
    const config = buildConfig(ctx.values, ctx.env, ctx.readFile);
    const secrets = secretsOf(config);
    const log = createLogger({ format: config.logFormat, level: config.logLevel, secrets });
    ctx.useLogger(log, secrets);
    const stop = ctx.stopOnSignals(log);
    ctx.print(JSON.stringify(await runMasq(config, { log, stop, env: ctx.env })));
    return 0;
  },
};
