/**
 * What a CLI command is: its own flags beyond the settings table, how many positional arguments it takes,
 * and a function from the parsed invocation to an exit code. main.ts looks commands up in `COMMANDS`
 * (lib/commands/mod.ts); a new command is one file and one line there.
 *
 * @module
 */
import type { Env, ReadFile } from "../config.ts";
import type { Logger } from "../log.ts";

/** Everything a command gets from main.ts. */
export interface CommandContext {
  /** Parsed flag values (settings flags and the command's own). */
  values: Record<string, string | boolean | undefined>;
  /** Positional arguments after the command name. */
  positionals: string[];
  env: Env;
  readFile: ReadFile;
  /** The logger for stderr; a command may build its own once it knows the log settings. */
  log: Logger;
  /** Called with a logger that knows the run's secrets, so main.ts redacts fatal errors with it. */
  useLogger(log: Logger, secrets: readonly string[]): void;
  /**
   * Aborted on the first SIGINT/SIGTERM (copies within a second are the same stop) or when the parent
   * process dies, once `stopOnSignals()` was called (lib/signals.ts).
   */
  stopOnSignals(log: Logger): AbortSignal;
  /** Writes one line to stdout. */
  print(line: string): void;
}

/** One CLI command. */
export interface Command {
  /** One line for `masq --help`: `run [--follow] [flags]   consume the queue ...`. */
  usage: string;
  /** Flags of this command beyond the settings table. */
  flags?: Record<string, { type: "string" | "boolean" }>;
  /** Whether the command reads the settings table's flags (run does; demo does not). */
  settings?: boolean;
  /** Positional arguments accepted after the command name (default 0; more is a usage error). */
  maxPositionals?: number;
  run(ctx: CommandContext): Promise<number>;
}
