/**
 * Who asks and why, for pii_access_log: the operating system user running a lifecycle command, and the
 * rule a --reason must follow (every access to an original gives one).
 *
 * @module
 */
import type { Env } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { findAddress } from "../transform/address.ts";

/** Who asks, and why (for the access log). */
export interface Requester {
  osUser: string;
  reason: string;
}

/**
 * Who runs the command on this machine, for the access log: USER, LOGNAME or USERNAME, else the last part
 * of HOME, else "unknown" (a variable the process may not read counts as unset).
 */
export function osUser(env: Env): string {
  const home = env("HOME")?.replace(/[\\/]+$/, "").split(/[\\/]/).at(-1);
  return env("USER") || env("LOGNAME") || env("USERNAME") || home || "unknown";
}

/** The fewest letters or digits a --reason must show. */
export const MIN_REASON_LETTERS = 3;
/** The most characters (code points) of a --reason. */
export const MAX_REASON_LENGTH = 1000;

// Format characters (zero-width space, bidi marks), controls, whitespace and the characters Unicode says
// render as nothing (the Hangul fillers are letters by category): none of them is a visible reason.
const INVISIBLE = /[\p{Cf}\p{Cc}\p{White_Space}\p{Default_Ignorable_Code_Point}]/gu;
const LETTER_OR_DIGIT = /[\p{L}\p{N}]/gu;

/**
 * A --reason as stored in pii_access_log: trimmed and otherwise as given, at most 1000 characters, and
 * holding at least 3 visible letters or digits (so "\u200b", "..." or "  " are refused) and no IP address in
 * any spelling. The error never repeats the text.
 *
 * @example
 * ```ts
 * import {
 *   checkReason,
 *   MAX_REASON_LENGTH,
 *   MIN_REASON_LETTERS,
 *   optionalReason,
 *   osUser,
 *   type Requester,
 *   requireReason,
 * } from "./access.ts";
 * const env = (name: string) => Deno.env.get(name);
 * const who: Requester = { osUser: osUser(env), reason: requireReason("ticket 42: fraud review", "recover") };
 * console.log(who, checkReason(" audit 7 "), optionalReason(undefined, "HMAC key rotation to k2"));
 * console.log(MIN_REASON_LETTERS, MAX_REASON_LENGTH); // 3 1000
 * ```
 */
export function checkReason(value: string): string {
  const reason = value.trim();
  if (!reason.isWellFormed()) throw new ConfigError("--reason", "is not well-formed Unicode");
  if (reason.includes("\u0000")) {
    throw new ConfigError("--reason", "holds a NUL character, which PostgreSQL cannot store");
  }
  if ([...reason].length > MAX_REASON_LENGTH) {
    throw new ConfigError("--reason", `is longer than ${MAX_REASON_LENGTH} characters`);
  }
  const visible = reason.replace(INVISIBLE, "").match(LETTER_OR_DIGIT)?.length ?? 0;
  if (visible < MIN_REASON_LETTERS) {
    throw new ConfigError(
      "--reason",
      `must hold at least ${MIN_REASON_LETTERS} visible letters or digits (e.g. --reason "ticket 1234: fraud review")`,
    );
  }
  // The access log is read by every privacy officer: a reason is no place for the personal data it concerns.
  const address = findAddress(reason);
  if (address !== null) {
    throw new ConfigError(
      "--reason",
      `holds ${address}; pii_access_log keeps no personal data: name the ticket, not the address`,
    );
  }
  return reason;
}

/** A --reason flag that is required: checkReason(), or a ConfigError saying why it is needed. */
export function requireReason(value: string | boolean | undefined, command: string): string {
  if (typeof value !== "string") {
    throw new ConfigError(
      "--reason",
      `required: \`masq ${command}\` records why in pii_access_log (e.g. --reason "ticket 1234: fraud review")`,
    );
  }
  return checkReason(value);
}

/** A --reason flag that may be left out (then `fallback`); given, it obeys checkReason(). */
export function optionalReason(value: string | boolean | undefined, fallback: string): string {
  return typeof value === "string" ? checkReason(value) : fallback;
}
