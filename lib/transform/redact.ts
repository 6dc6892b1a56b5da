/**
 * The redacted copy of a rejected body (`user_logins_rejected.body_redacted`, the dead-letter message):
 * redaction by allow-list, not by block-list. The copy keeps the body's shape and nesting; one rule decides
 * what stays readable in it:
 *
 * **A value is kept in the clear only at a top-level allow-listed field (`user_id`, `device_type`,
 * `locale`, `app_version`, `timestamp`, exact lowercase key), only when it is what that field's column would
 * store, and only when findAddress() finds no address in it, in any spelling.** Per field:
 *
 * - `user_id`: a non-blank string of at most 128 characters, without NUL, valid Unicode;
 * - `device_type`: the same within 32 characters, with a letter, and only letters, digits, spaces and
 *   `._-/()` (a device name, not free text);
 * - `locale`: a known language or region code (`pt-BR`, `en_US`, `zh-Hant-TW`, `RU`, `US`, `419`), as
 *   Intl.DisplayNames knows them, never a variant (`RTM-0181` is not one);
 * - `app_version`: what packs into the column (`M`, `M.m`, `M.m.p`, or a whole number);
 * - `timestamp`: epoch seconds (number or numeric string) within 7 days of the message's SentTimestamp. Here
 *   that window replaces the address test: every time from 1970 to 2106 reads as an IPv4 address written as
 *   an integer, and outside the window the "timestamp" may well be one.
 *
 * Every other value, at any depth, becomes a keyed token or a marker. Object keys follow the same idea: a key
 * is kept only when it belongs to the contract's shape, that is one of its field names (`user_id`,
 * `device_type`, `locale`, `app_version`, `timestamp`, `ip`, `device_id`) or one of the words these are
 * nested as (`user`, `device`, `app`, `id`, `type`, `version`: `{"device": {"type": ..}}` flattens to
 * `device_type`), spelled exactly so, at any depth. Every other key (`IP`, `geo`, `x_forwarded_for`, an
 * address, a device id) becomes `key_` + 16 hex digits of a keyed token, so nothing a producer chose survives
 * as a key except that fixed vocabulary.
 *
 * @module
 */
import type { Masker } from "../types.ts";
import { findAddress } from "./address.ts";
import { packAppVersion } from "./app_version.ts";
import { looksLikeIp } from "./mask.ts";
import { codePointLength, COLUMN_WIDTH, isPlainObject, MAX_DEPTH } from "./parse.ts";

export { looksLikeIp };

/** Top-level fields whose valid values are kept in the clear. */
export const ALLOWED_FIELDS: readonly string[] = [
  "user_id",
  "device_type",
  "locale",
  "app_version",
  "timestamp",
];

/** Object keys kept as they are: the contract's field names and the words they are nested as. */
export const KNOWN_KEYS: ReadonlySet<string> = new Set([
  "user_id",
  "device_type",
  "locale",
  "app_version",
  "timestamp",
  "ip",
  "device_id",
  "user",
  "device",
  "app",
  "id",
  "type",
  "version",
]);

/** What replaces a value the copy cannot keep and cannot usefully tokenise. */
export const MARKER = {
  boolean: "[boolean]",
  tooDeep: "[nested too deep]",
} as const;

const DEVICE_TYPE = /^[\p{L}\p{N}][\p{L}\p{N} ._\-/()]*$/u;
const LETTER = /\p{L}/u;
const NUMERIC = /^\s*\d{1,12}(?:\.\d{1,6})?\s*$/;
/** How far from its SentTimestamp a body's timestamp may lie and still be kept. */
const TIMESTAMP_WINDOW_MS = 7 * 86_400_000;

/** What a stored text column would hold: non-blank, within its width, storable, and no address. */
function columnText(s: string, width: number): boolean {
  return s.trim() !== "" && codePointLength(s) <= width && !s.includes("\u0000") && s.isWellFormed() &&
    findAddress(s) === null;
}

const LANGUAGE_TAG = /^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{4}))?(?:[-_]([A-Za-z]{2}|\d{3}))?$/;
const REGION = /^(?:[A-Za-z]{2}|\d{3})$/;

let displayNames: Record<"language" | "script" | "region", Intl.DisplayNames> | undefined;

/** Whether Intl.DisplayNames has a name for `code` (ICU's "unknown" codes und, Zzzz and ZZ excluded). */
function named(type: "language" | "script" | "region", code: string): boolean {
  displayNames ??= {
    language: new Intl.DisplayNames(["en"], { type: "language", fallback: "none" }),
    script: new Intl.DisplayNames(["en"], { type: "script", fallback: "none" }),
    region: new Intl.DisplayNames(["en"], { type: "region", fallback: "none" }),
  };
  if (/^(?:und|zzzz|zz)$/i.test(code)) return false;
  try {
    return displayNames[type].of(code) !== undefined;
  } catch {
    return false; // not even well-formed for its type
  }
}

/** A known language tag (`pt-BR`, `en_US`, `zh-Hant-TW`) or region code (`US`, `419`). */
function knownLocale(s: string): boolean {
  const tag = LANGUAGE_TAG.exec(s);
  if (
    tag !== null && named("language", tag[1]) && (tag[2] === undefined || named("script", tag[2])) &&
    (tag[3] === undefined || named("region", tag[3]))
  ) return true;
  return REGION.test(s) && named("region", s);
}

function packs(version: string): boolean {
  try {
    packAppVersion(version);
    return true;
  } catch {
    return false;
  }
}

/** Whether the top-level field `key` may keep `value` in the clear (the rule of the module doc). */
function keepsInClear(key: string, value: unknown, sentTimestamp: number): boolean {
  switch (key) {
    case "user_id":
      return typeof value === "string" && columnText(value, COLUMN_WIDTH.user_id);
    case "device_type":
      return typeof value === "string" && DEVICE_TYPE.test(value) && LETTER.test(value) &&
        columnText(value, COLUMN_WIDTH.device_type);
    case "locale":
      return typeof value === "string" && knownLocale(value) && columnText(value, COLUMN_WIDTH.locale);
    case "app_version":
      if (typeof value === "number") return Number.isInteger(value) && value >= 0 && packs(String(value));
      return typeof value === "string" && packs(value) && findAddress(value) === null;
    case "timestamp": {
      const seconds = typeof value === "number"
        ? value
        : typeof value === "string" && NUMERIC.test(value)
        ? Number(value)
        : NaN;
      return Number.isFinite(seconds) && Math.abs(seconds * 1000 - sentTimestamp) <= TIMESTAMP_WINDOW_MS;
    }
    default:
      return false;
  }
}

/**
 * A JSON copy of a body with everything outside the allow-list replaced:
 *
 * - an allow-listed top-level value that passes the rule of the module doc -> kept;
 * - a value that is an IP address as a whole -> the token `masked_ip` would hold;
 * - a value whose lowercased, `_`-flattened path is `device_id` (`device.id`, `Device_ID`) -> the token
 *   `masked_device_id` would hold;
 * - any other string or number -> `hex(HMAC(K, "body." + path + ":" + text))`, its path lowercased with
 *   arrays as `[]`, so the same value under different paths never shares a token;
 * - a boolean -> `"[boolean]"`; null and the empty string stay as they are (they say nothing);
 * - an object key outside the contract's vocabulary (KNOWN_KEYS) -> `key_` + the first 16 hex digits of its
 *   token;
 * - anything nested deeper than the body limit -> `"[nested too deep]"`.
 *
 * Null when the body is not a JSON object.
 *
 * @param sentTimestamp the message's SentTimestamp (epoch milliseconds): a `timestamp` is kept only near it
 *
 * @example
 * ```ts
 * import { redactBody } from "./redact.ts";
 * import { createMasker } from "./mask.ts";
 * const masker = createMasker("example-key");
 * redactBody({ user_id: "u1", User: { IP: "10.0.0.1" } }, masker, Date.now());
 * // '{"user_id":"u1","key_<16 hex>":{"key_<16 hex>":"<the token of ip 10.0.0.1>"}}'
 * ```
 */
export function redactBody(json: unknown, masker: Masker, sentTimestamp: number): string | null {
  if (!isPlainObject(json)) return null;
  // A null prototype: a "__proto__" key stays an ordinary key.
  const out: Record<string, unknown> = Object.create(null);
  for (const [key, value] of Object.entries(json)) {
    const safeKey = redactKey(key, "", masker);
    out[safeKey] = ALLOWED_FIELDS.includes(key) && (value === null || keepsInClear(key, value, sentTimestamp))
      ? value
      : redactValue(value, key.toLowerCase(), flatName(key), 1, masker);
  }
  // Pure ASCII (the same JSON, with \u escapes): SQS refuses U+FFFE and U+FFFF in a message, and some
  // emulators any character outside the BMP, so a redacted body can always be dead-lettered.
  return asciiJson(JSON.stringify(out));
}

/**
 * JSON text made pure ASCII as `body_redacted` is stored: every UTF-16 code unit outside \x20-\x7e
 * becomes a lowercase `\uXXXX` escape (an astral character, two). Still the same JSON to a parser.
 *
 * @example
 * ```ts
 * import { asciiJson } from "./redact.ts";
 * asciiJson(JSON.stringify({ user_id: "rt-élève" })); // '{"user_id":"rt-\\u00e9l\\u00e8ve"}'
 * ```
 */
export function asciiJson(json: string): string {
  return json.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** The contract's flattened name of a path, lowercased (`Device.ID` -> `device_id`). */
function flatName(key: string, parent = ""): string {
  return parent === "" ? key.toLowerCase() : `${parent}_${key.toLowerCase()}`;
}

function redactKey(key: string, path: string, masker: Masker): string {
  if (KNOWN_KEYS.has(key)) return key;
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

/**
 * Quoted text (a double quote left open too: a driver's message may be cut short), and the `=(value)` of
 * PostgreSQL's `Key (column)=(value)`.
 */
const QUOTED = /"(?:[^"\\]|\\.)*(?:"|$)|'(?:[^'\\]|\\.)*'|\)=\((?:[^()]|\([^()]*\))*\)/g;
/** A quoted name PostgreSQL puts after one of these words is an identifier of the schema, not a value. */
const NAMED = /\b(?:relation|constraint|column|table|type|index|schema|function|trigger|sequence|view) $/i;
const IDENTIFIER = /^"[A-Za-z_][A-Za-z0-9_$.]{0,62}"$/;
/** A word's opening brackets, its core, and its closing brackets and punctuation. */
const WORD = /^([(<{]*)(.*?)([)>}]*[,;.!?]*)$/s;

/**
 * A reason or error text from elsewhere (a database driver, say) made fit to store and log: quoted text is
 * replaced by `"..."` (except a schema identifier PostgreSQL names as such: `constraint "no_evil"`), any
 * word holding an IP address in any spelling (findAddress()) by `[ip]`, since such messages may quote the
 * value they refused, and anything but printable ASCII by `?` (a LATIN1 database stores the result too).
 *
 * @example
 * ```ts
 * import { scrubReason } from "./redact.ts";
 * scrubReason('invalid input syntax for type integer: "abc"'); // 'invalid input syntax for type integer: "..."'
 * scrubReason('violates check constraint "no_evil"');         // unchanged
 * scrubReason("refused 10.0.0.1 and (0xCB00716A) twice");     // "refused [ip] and ([ip]) twice"
 * ```
 */
export function scrubReason(text: string): string {
  const unquoted = text.replace(QUOTED, (q, at: number) => {
    if (q.startsWith(")=(")) return ")=(...)";
    return IDENTIFIER.test(q) && NAMED.test(text.slice(Math.max(0, at - 12), at)) ? q : '"..."';
  });
  // Words split at ASCII white space only: findAddress() drops some other spaces (U+FEFF) as invisible.
  const scrubbed = unquoted.split(/([ \t\n\r\f\v]+)/).map((word) => {
    if (findAddress(word) === null) return word;
    const [, open, core, close] = WORD.exec(word)!;
    return findAddress(core) === null ? "[ip]" : `${open}[ip]${close}`;
  }).join("");
  return scrubbed.replace(/[\t\n\r\f\v]/g, " ").replace(/[^\x20-\x7e]/g, "?");
}
