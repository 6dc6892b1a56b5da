/**
 * masq's domain errors, in one place, and the exit code each means (exitCodeFor()): a ConfigError is the
 * operator's to fix (exit 2), anything else is a fatal runtime error (exit 1).
 *
 * @module
 */

/**
 * A setting that is missing, malformed or points at something that does not answer at start-up (or a
 * command line that is not understood). main.ts maps it to exit code 2 and prints only its message (no
 * stack trace).
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
 * A batch that failed for good, with the SQS message ids it concerns (main.ts logs them with the fatal
 * error; the messages stay in the queue for redelivery).
 *
 * @example
 * ```ts
 * import { BatchError } from "./errors.ts";
 * const err = new BatchError("batch failed: permission denied", ["m1", "m2"], new Error("permission denied"));
 * err.messageIds; // ["m1", "m2"]
 * ```
 */
export class BatchError extends Error {
  readonly messageIds: readonly string[];
  constructor(message: string, messageIds: readonly string[], cause: unknown) {
    super(message, { cause });
    this.name = "BatchError";
    this.messageIds = messageIds;
  }
}

/**
 * A write given up because the run is stopping (SIGTERM, SIGINT, or a fatal error elsewhere): its
 * statement failed and no further attempt was made. Nothing of it was committed; its messages stay in
 * the queue for redelivery, so the pipeline leaves them there and the run still ends as stopped.
 */
export class StoppedError extends Error {
  constructor(message = "stopped before the write succeeded") {
    super(message);
    this.name = "StoppedError";
  }
}

/** A vault key that could not be used, or a ciphertext that does not open under it. */
export class VaultError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VaultError";
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
