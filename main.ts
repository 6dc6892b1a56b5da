/**
 * masq CLI: parse arguments, run a command from lib/commands/, map errors to exit codes by their class
 * (lib/errors.ts exitCodeFor(): 0 done, 2 bad usage or configuration, 1 fatal runtime error).
 */
import { helpText, parseCommandLine } from "./lib/cli.ts";
import { BatchError, ConfigError, errorMessage, exitCodeFor } from "./lib/errors.ts";
import { createLogger, type Logger, redact } from "./lib/log.ts";
import { COMMANDS } from "./lib/commands/mod.ts";
import { stopOnSignals } from "./lib/signals.ts";

/** Environment lookup that treats a variable we may not read as unset. */
function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

const usages = () => Object.entries(COMMANDS).map(([, c]) => c.usage);

async function main(args: string[]): Promise<number> {
  let log: Logger = createLogger({ format: env("MASQ_LOG_FORMAT") === "json" ? "json" : "text" });
  let secrets: readonly string[] = [];
  try {
    const inv = parseCommandLine(args, COMMANDS);
    if (inv.help || inv.command === "" || inv.command === "help") {
      console.log(helpText(usages()));
      return inv.command === "" && !inv.help ? 2 : 0;
    }
    const command = COMMANDS[inv.command];
    if (command === undefined) {
      throw new ConfigError(
        "usage",
        `unknown command ${JSON.stringify(inv.command)}; expected one of ${
          Object.keys(COMMANDS).join(", ")
        } (see masq --help)`,
      );
    }
    if (inv.positionals.length > (command.maxPositionals ?? 0)) {
      throw new ConfigError(
        "usage",
        `unexpected argument ${JSON.stringify(inv.positionals[command.maxPositionals ?? 0])} after ${
          JSON.stringify(inv.command)
        } (see masq --help)`,
      );
    }
    return await command.run({
      values: inv.values,
      positionals: inv.positionals,
      env,
      readFile: (p) => Deno.readTextFileSync(p),
      log,
      useLogger(l, s) {
        log = l;
        secrets = s;
      },
      stopOnSignals,
      print: (line) => console.log(line),
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`masq: ${redact(err.message, secrets)}`);
    } else {
      if (env("MASQ_DEBUG_STACK")) {
        console.error(redact(err instanceof Error ? err.stack ?? "" : String(err), secrets));
      }
      log.error("fatal", {
        error: errorMessage(err),
        ...(err instanceof BatchError ? { message_ids: err.messageIds } : {}),
      });
    }
    return exitCodeFor(err);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
