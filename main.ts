/**
 * masq CLI: parse arguments, build the configuration, run a command, map errors to exit codes
 * (0 done, 2 bad usage or configuration, 1 fatal runtime error).
 */
import { buildConfig, helpText, parseCommandLine, secretsOf } from "./lib/config.ts";
import { ConfigError, errorMessage } from "./lib/errors.ts";
import { createLogger, type Logger, redact } from "./lib/log.ts";
import { runMasq } from "./lib/run.ts";
import { runDemo } from "./lib/demo.ts";
import { runBench } from "./lib/bench.ts";

/** Environment lookup that treats a variable we may not read as unset. */
function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function printSummary(summary: object): void {
  console.log(JSON.stringify(summary));
}

/** Stops on the first SIGINT/SIGTERM; a second one exits at once (SQS redelivers what was in flight). */
function stopOnSignals(log: Logger): AbortController {
  const stop = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => {
      if (stop.signal.aborted) {
        log.warn(`${sig} again: exiting now; in-flight messages will be redelivered`);
        Deno.exit(1);
      }
      log.info(`${sig}: stopping; finishing in-flight batches`);
      stop.abort();
    });
  }
  return stop;
}

async function main(args: string[]): Promise<number> {
  let log: Logger = createLogger({ format: env("MASQ_LOG_FORMAT") === "json" ? "json" : "text" });
  let secrets: string[] = [];
  try {
    const inv = parseCommandLine(args);
    if (inv.help || inv.command === "" || inv.command === "help") {
      console.log(helpText());
      return inv.command === "" && !inv.help ? 2 : 0;
    }
    switch (inv.command) {
      case "run": {
        const config = buildConfig(inv.values, env, (p) => Deno.readTextFileSync(p));
        secrets = secretsOf(config);
        log = createLogger({ format: config.logFormat, level: config.logLevel, secrets });
        const stop = stopOnSignals(log);
        printSummary(await runMasq(config, { log, stop: stop.signal, env }));
        return 0;
      }
      case "demo": {
        const here = new URL("./data/sample_logins.jsonl", import.meta.url);
        printSummary(await runDemo({ log, print: console.log, samplePath: here.pathname }));
        return 0;
      }
      case "bench": {
        const n = inv.values.messages === undefined ? undefined : Number(inv.values.messages);
        if (n !== undefined && (!Number.isInteger(n) || n < 10 || n > 1_000_000)) {
          throw new ConfigError(
            "--messages",
            `${JSON.stringify(inv.values.messages)} is not a whole number from 10 to 1000000`,
          );
        }
        printSummary(await runBench({ log, print: (s) => console.error(s), messages: n, env }));
        return 0;
      }
      default:
        throw new ConfigError(
          "usage",
          `unknown command ${JSON.stringify(inv.command)}; expected run, demo or bench (see masq --help)`,
        );
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`masq: ${redact(err.message, secrets)}`);
      return 2;
    }
    if (Deno.env.get("MASQ_DEBUG_STACK")) console.error(err);
    log.error("fatal", {
      error: errorMessage(err),
      ...((err as { messageIds?: string[] }).messageIds
        ? { message_ids: (err as { messageIds: string[] }).messageIds }
        : {}),
    });
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
