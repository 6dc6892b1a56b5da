/**
 * The one domain error of masq: a setting that is missing, malformed or points at something that does
 * not answer at start-up. main.ts maps it to exit code 2 and prints only its message (no stack trace).
 *
 * @example
 * ```ts
 * throw new ConfigError("SQS_QUEUE_URL", "\"ftp://x\" is not an http(s) URL");
 * // message: "SQS_QUEUE_URL: \"ftp://x\" is not an http(s) URL"
 * ```
 */
export class ConfigError extends Error {
  /** The flag or environment variable at fault, e.g. `--queue-url / SQS_QUEUE_URL`. */
  readonly setting: string;

  constructor(setting: string, problem: string) {
    super(`${setting}: ${problem}`);
    this.name = "ConfigError";
    this.setting = setting;
  }
}

/**
 * The exit code of a command that ended with `err`: 2 for a ConfigError (bad usage or configuration: the
 * operator's to fix, nothing was done), 1 for anything else (a fatal runtime error). 0 is success.
 *
 * @example
 * ```ts
 * import { ConfigError, exitCodeFor } from "./errors.ts";
 * exitCodeFor(new ConfigError("--max", "is not a number")); // 2
 * exitCodeFor(new Error("connection reset")); // 1
 * ```
 */
export function exitCodeFor(err: unknown): 1 | 2 {
  return err instanceof ConfigError ? 2 : 1;
}

/** The message of any thrown value, without its stack. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const base = err.message || err.name;
    return typeof code === "string" && code !== "" && !base.includes(code) ? `${base} (${code})` : base;
  }
  return String(err);
}
