/**
 * The redacted copy of a rejected body (`user_logins_rejected.body_redacted`, the dead-letter message):
 * redaction by allow-list, not by block-list. The copy keeps the body's shape, but the only values kept in
 * the clear are the few top-level fields known not to be personal (`user_id`, `device_type`, `locale`,
 * `app_version`, `timestamp`, exact lowercase key), and only when they hold a plausible value of their
 * kind. Every other value becomes a keyed token or a type marker, whatever its key is called, its case, its
 * nesting or whether it sits in an array; a value that parses as an IP address is never kept anywhere.
 *
 * @module
 */
import type { Masker } from "../types.ts";
import { looksLikeIp } from "./mask.ts";
import { codePointLength, COLUMN_WIDTH, MAX_DEPTH } from "./parse.ts";

export { looksLikeIp };

/** Top-level fields whose valid values are kept in the clear. */
export const ALLOWED_FIELDS: readonly string[] = [
  "user_id",
  "device_type",
  "locale",
  "app_version",
  "timestamp",
];

/** What replaces a value the copy cannot keep and cannot usefully tokenise. */
export const MARKER = {
  boolean: "[boolean]",
  tooDeep: "[nested too deep]",
} as const;

const VERSION = /^\s*\d{1,4}(?:\.\d{1,3}){0,2}\s*$/;
const LOCALE = /^[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8}){0,3}$/;
const DEVICE_TYPE = /^[\p{L}\p{N}][\p{L}\p{N} ._\-/()]*$/u;
const NUMERIC = /^\s*\d{1,12}(?:\.\d{1,6})?\s*$/;
/** The last second of year 9999: a larger number is no login time (it may be a phone number). */
const MAX_EPOCH = 253402300799;

function plainText(s: string, width: number): boolean {
  return s.trim() !== "" && codePointLength(s) <= width && !s.includes("\u0000") && s.isWellFormed() &&
    !looksLikeIp(s);
}

/** Whether the top-level field `key` may keep `value` in the clear. */
function keepsInClear(key: string, value: unknown): boolean {
  switch (key) {
    case "user_id":
      return typeof value === "string" && plainText(value, COLUMN_WIDTH.user_id);
    case "device_type":
      return typeof value === "string" && plainText(value, COLUMN_WIDTH.device_type) &&
        DEVICE_TYPE.test(value);
    case "locale":
      return typeof value === "string" && LOCALE.test(value);
    case "app_version":
      return (typeof value === "string" && VERSION.test(value)) ||
        (typeof value === "number" && Number.isInteger(value) && value >= 0 && value < 1e7);
    case "timestamp":
      return (typeof value === "string" && NUMERIC.test(value) && Number(value) <= MAX_EPOCH) ||
        (typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= MAX_EPOCH);
    default:
      return false;
  }
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * A JSON copy of a body with everything outside the allow-list replaced:
 *
 * - an IP address (any spelling, any place) -> the token `masked_ip` would hold;
 * - a value whose lowercased, `_`-flattened path is `device_id` (`device.id`, `Device_ID`) -> the token
 *   `masked_device_id` would hold;
 * - any other string or number -> `hex(HMAC(K, "body." + path + ":" + text))`, its path lowercased with
 *   arrays as `[]`, so the same value under different paths never shares a token;
 * - a boolean -> `"[boolean]"`; null and the empty string stay as they are (they say nothing);
 * - an object key that is not a plain identifier (an address, an e-mail, free text used as a key) ->
 *   `key_` + the first 16 hex digits of its token;
 * - anything nested deeper than the body limit -> `"[nested too deep]"`.
 *
 * Null when the body is not a JSON object.
 *
 * @example
 * ```ts
 * import { redactBody } from "./redact.ts";
 * import { createMasker } from "./mask.ts";
 * const masker = createMasker("example-key");
 * redactBody({ user_id: "u1", User: { IP: "10.0.0.1" } }, masker);
 * // '{"user_id":"u1","User":{"IP":"<the token of ip 10.0.0.1>"}}'
 * ```
 */
export function redactBody(json: unknown, masker: Masker): string | null {
  if (!isPlainObject(json)) return null;
  // A null prototype: a "__proto__" key stays an ordinary key.
  const out: Record<string, unknown> = Object.create(null);
  for (const [key, value] of Object.entries(json)) {
    const safeKey = redactKey(key, "", masker);
    out[safeKey] = ALLOWED_FIELDS.includes(key) && (value === null || keepsInClear(key, value))
      ? value
      : redactValue(value, key.toLowerCase(), flatName(key), 1, masker);
  }
  // Pure ASCII (the same JSON, with \u escapes): SQS refuses U+FFFE and U+FFFF in a message, and some
  // emulators any character outside the BMP, so a redacted body can always be dead-lettered.
  return JSON.stringify(out).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** The contract's flattened name of a path, lowercased (`Device.ID` -> `device_id`). */
function flatName(key: string, parent = ""): string {
  return parent === "" ? key.toLowerCase() : `${parent}_${key.toLowerCase()}`;
}

function redactKey(key: string, path: string, masker: Masker): string {
  if (PLAIN_KEY.test(key)) return key;
  return `key_${masker.token(`key.${path}`, key).slice(0, 16)}`;
}

function redactValue(
  value: unknown,
  path: string,
  flat: string,
  depth: number,
  masker: Masker,
): unknown {
  if (value === null || value === "") return value;
  if (depth > MAX_DEPTH) return MARKER.tooDeep;
  switch (typeof value) {
    case "string":
      return scalarToken(value, path, flat, masker);
    case "number":
      return scalarToken(JSON.stringify(value), path, flat, masker);
    case "boolean":
      return MARKER.boolean;
  }
  if (Array.isArray(value)) {
    const itemPath = `${path}[]`;
    // An array of device ids is still device ids: the flattened name carries through one array level.
    return value.map((item) => redactValue(item, itemPath, flat, depth + 1, masker));
  }
  const out: Record<string, unknown> = Object.create(null);
  for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
    out[redactKey(key, path, masker)] = redactValue(
      inner,
      `${path}.${key.toLowerCase()}`,
      flatName(key, flat),
      depth + 1,
      masker,
    );
  }
  return out;
}

function scalarToken(text: string, path: string, flat: string, masker: Masker): string {
  if (looksLikeIp(text) || flat === "ip") return masker.ip(text);
  if (flat === "device_id") return masker.deviceId(text);
  return masker.token(`body.${path}`, text);
}

const QUOTED = /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g;
/** A quoted name PostgreSQL puts after one of these words is an identifier of the schema, not a value. */
const NAMED = /\b(?:relation|constraint|column|table|type|index|schema|function|trigger|sequence|view) $/i;
const IDENTIFIER = /^"[A-Za-z_][A-Za-z0-9_$.]{0,62}"$/;

/**
 * A reason or error text from elsewhere (a database driver, say) made fit to store and log: quoted text is
 * replaced by `"…"` (except a schema identifier PostgreSQL names as such: `constraint "no_evil"`) and any
 * word that is an IP address by `[ip]`, since such messages may quote the value they refused.
 *
 * @example
 * ```ts
 * import { scrubReason } from "./redact.ts";
 * scrubReason('invalid input syntax for type integer: "abc"'); // 'invalid input syntax for type integer: "…"'
 * scrubReason('violates check constraint "no_evil"');         // unchanged
 * scrubReason("refused 10.0.0.1 twice");                         // "refused [ip] twice"
 * ```
 */
export function scrubReason(text: string): string {
  return text.replace(
    QUOTED,
    (q, at: number) => (IDENTIFIER.test(q) && NAMED.test(text.slice(Math.max(0, at - 12), at)) ? q : '"…"'),
  ).split(/(\s+)/).map((word) => {
    const trimmed = word.replace(/[,;.]+$/, "");
    if (trimmed !== "" && looksLikeIp(trimmed)) return word.replace(trimmed, "[ip]");
    const bare = trimmed.replace(/^[(<{]+|[)>}]+$/g, "");
    return bare !== "" && looksLikeIp(bare) ? word.replace(bare, "[ip]") : word;
  }).join("");
}
