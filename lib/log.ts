/**
 * A small structured logger for stderr: readable `level message key=value` lines on a terminal, one JSON
 * object per line with `--log-format json`. Every line passes through the redactor, so a secret (the
 * database password, the HMAC key) that slips into an error message never reaches the log.
 *
 * Hand-written rather than pino because masq needs exactly two formats, synchronous writes (so the last
 * line before a crash is not lost) and redaction of values, not of keys.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";
export type Fields = Record<string, unknown>;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Strings to replace with `***` wherever they appear. */
  secrets?: readonly string[];
  /** Where lines go; stderr by default. */
  write?: (line: string) => void;
}

const encoder = new TextEncoder();

/**
 * Writes text to stderr synchronously and whole (a write may take only part of it), so that the last line
 * before a crash is not lost. No newline is added.
 *
 * @example
 * ```ts
 * import { writeStderr } from "./log.ts";
 * writeStderr("masq: 10 done\n");
 * ```
 */
export function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

/**
 * Replaces every occurrence of each secret in `text` with `***`.
 *
 * @example
 * ```ts
 * redact("password authentication failed for s3cret", ["s3cret"]); // "password authentication failed for ***"
 * ```
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  // Longest first, so a secret that contains a shorter one is replaced whole. Any length counts: a
  // one-character password is still a password (masq refuses weak HMAC keys before it logs anything).
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (s.length === 0) continue;
    // The secret as written, as a JSON string escapes it, and as a URL encodes it.
    for (const form of new Set([s, JSON.stringify(s).slice(1, -1), encodeURIComponent(s)])) {
      out = out.split(form).join("***");
    }
  }
  return out;
}

function textValue(v: unknown): string {
  if (typeof v === "string") return /[\s"=]/.test(v) || v === "" ? JSON.stringify(v) : v;
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v) ?? String(v);
}

/**
 * Creates a logger.
 *
 * @example
 * ```ts
 * const log = createLogger({ format: "json", secrets: ["hunter2"] });
 * log.warn("database unreachable, retrying", { attempt: 3, delay_ms: 800 });
 * ```
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const min = RANK[opts.level ?? "info"];
  const format = opts.format ?? "text";
  const secrets = opts.secrets ?? [];
  const write = opts.write ?? ((line: string) => writeStderr(line + "\n"));
  const emit = (level: LogLevel, msg: string, fields: Fields = {}) => {
    if (RANK[level] < min) return;
    let line: string;
    if (format === "json") {
      const rec: Fields = { time: new Date().toISOString(), level, msg, ...fields };
      line = JSON.stringify(rec, (_k, v) => (v instanceof Error ? v.message : v));
    } else {
      const kv = Object.entries(fields).map(([k, v]) => `${k}=${textValue(v)}`).join(" ");
      line = `${new Date().toISOString().slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${msg}${
        kv ? " " + kv : ""
      }`;
    }
    write(redact(line, secrets));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}

/** A logger that drops everything (for unit tests and embedded helpers). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
