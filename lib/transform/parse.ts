/**
 * body -> login fields | rejection reason. Pure and synchronous: no key, no I/O. Every rule of the README's "Bad input"
 * lives here, so that what reaches the sink fits `user_logins` (the database is the last line of defence,
 * not the first).
 */
import * as v from "valibot";
import { findAddress } from "./address.ts";
import { packAppVersion } from "./app_version.ts";

/** The fields of one valid login, before masking. */
export interface LoginFields {
  userId: string;
  deviceType: string | null;
  locale: string | null;
  /** Raw IP text, or null when absent/null/empty. Masked later, never stored. */
  ip: string | null;
  /** Raw device id, or null when absent/null/empty. Masked later, never stored. */
  deviceId: string | null;
  appVersion: number | null;
  /** Login time in epoch seconds, when the body carries a valid one. */
  timestamp: number | null;
}

export type ParseResult =
  | { ok: true; fields: LoginFields }
  /** `json` is the parsed body when it was a JSON object (for the redacted copy), else undefined. */
  | { ok: false; reason: string; json?: Record<string, unknown> };

/**
 * Nesting deeper than this is rejected, counting objects and arrays anywhere in the body (the body itself is
 * level 1): no login needs it, and it bounds the work per message (the redacted copy's included).
 */
export const MAX_DEPTH = 32;

/** Column widths of `user_logins`, in characters (PostgreSQL counts code points). */
export const COLUMN_WIDTH = { user_id: 128, device_type: 32, locale: 32 } as const;

/** Number of Unicode code points in `s` (what `varchar(n)` counts). */
export function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** The type of a value for a reason: reasons are stored and logged, so they never quote the value. */
function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

/**
 * What is wrong with the text of a column stored in the clear, or null. One function (and one schema step)
 * for every content rule keeps validation cheap: each extra pipe step costs about a microsecond.
 */
function textProblem(column: string, s: string, width: number): string | null {
  if (s.includes("\u0000")) return `${column} contains a NUL character, which PostgreSQL cannot store`;
  if (!s.isWellFormed()) return `${column} contains a lone UTF-16 surrogate (not valid Unicode)`;
  // s.length bounds the code point count from above: only long strings need counting.
  if (s.length > width && codePointLength(s) > width) {
    return `${column} is ${codePointLength(s)} characters long; the column holds ${width}`;
  }
  // Anywhere in the text, in any spelling (lib/transform/address.ts); the reason names the kind, not the value.
  const address = findAddress(s);
  return address === null ? null : `${column} holds ${address}, which masq never stores in the clear`;
}

/** A stored text column: a string that fits its width, storable by PostgreSQL, not an address. */
function storedText(column: keyof typeof COLUMN_WIDTH, required = false) {
  const width = COLUMN_WIDTH[column];
  return v.pipe(
    v.string((i) =>
      i.input === undefined && required
        ? `${column} is missing`
        : `${column} must be a string${required ? "" : " or null"}, got ${describe(i.input)}`
    ),
    v.check(
      (s) => (required ? s.trim() !== "" : true) && textProblem(column, s, width) === null,
      (i) => {
        const s = i.input as string;
        return required && s.trim() === "" ? `${column} is empty` : textProblem(column, s, width)!;
      },
    ),
  );
}

/** A masked field: string or null, any length (only its token is stored). */
function maskedText(field: string) {
  return v.nullish(
    v.pipe(
      // The value itself stays out of the reason: it is personal data, and reasons are stored in the clear.
      v.string((i) => `${field} must be a string or null, got ${describe(i.input)}`),
      v.check(
        (s) => s.isWellFormed(),
        `${field} contains a lone UTF-16 surrogate (not valid Unicode)`,
      ),
    ),
  );
}

const LoginSchema = v.object({
  user_id: storedText("user_id", true),
  device_type: v.nullish(storedText("device_type")),
  locale: v.nullish(storedText("locale")),
  ip: maskedText("ip"),
  device_id: maskedText("device_id"),
  app_version: v.nullish(
    v.pipe(
      v.union(
        [v.string(), v.number()],
        (i) => `app_version must be a version string such as "2.3.0", got ${describe(i.input)}`,
      ),
      v.check(
        (x) => typeof x === "string" || (Number.isInteger(x) && x >= 0),
        (i) =>
          (i.input as number) < 0
            ? "app_version must not be negative"
            : 'app_version must be a version string such as "2.3.0" or a whole number, got a fraction',
      ),
    ),
  ),
  timestamp: v.nullish(
    v.union(
      [v.string(), v.number()],
      (i) => `timestamp must be epoch seconds (number or numeric string), got ${describe(i.input)}`,
    ),
  ),
});

const KNOWN = new Set(Object.keys(LoginSchema.entries));

/** Whether a parsed JSON value is an object (not null, not an array). */
export function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * Flattens nested objects into one level, joining keys with `_` (`{"device": {"type": "ios"}}` ->
 * `device_type`). Arrays, and objects under a kept key (a wrong type the schema will name), are leaves.
 * Iterative, so hostile nesting cannot overflow the stack.
 * Keeps only keys in `keep` (unknown keys are ignored by the contract); throws a RangeError when nesting
 * exceeds `maxDepth` or when a kept key arrives twice.
 *
 * @example
 * ```ts
 * flatten({ user_id: "u", device: { type: "ios" } }); // { user_id: "u", device_type: "ios" }
 * ```
 */
export function flatten(
  obj: Record<string, unknown>,
  keep: ReadonlySet<string> = KNOWN,
  maxDepth = MAX_DEPTH,
): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null);
  const stack: Array<[string | null, Record<string, unknown>, number]> = [[null, obj, 1]];
  while (stack.length > 0) {
    const [prefix, node, depth] = stack.pop()!;
    if (depth > maxDepth) throw new RangeError(`body is nested deeper than ${maxDepth} levels`);
    for (const [k, value] of Object.entries(node)) {
      const key = prefix === null ? k : `${prefix}_${k}`;
      if (isPlainObject(value) && !keep.has(key)) {
        stack.push([key, value, depth + 1]);
      } else if (keep.has(key)) {
        if (key in out) throw new RangeError(`${key} is given twice (directly and through a nested object)`);
        out[key] = value;
      }
    }
  }
  return out;
}

/**
 * Whether objects or arrays nest deeper than `max` levels anywhere in `body` (which is level 1), under any
 * key. Iterative, so hostile nesting cannot overflow the stack; a flat body costs one look at each value.
 */
export function nestedDeeperThan(body: Record<string, unknown>, max: number = MAX_DEPTH): boolean {
  // Pairs of (container, its level), pushed only for values that are objects or arrays.
  const stack: unknown[] = [];
  for (const key in body) {
    const value = body[key];
    if (typeof value === "object" && value !== null) stack.push(value, 2);
  }
  while (stack.length > 0) {
    const level = stack.pop() as number;
    const node = stack.pop() as Record<string, unknown> | unknown[];
    if (level > max) return true;
    const values = Array.isArray(node) ? node : Object.values(node);
    for (const value of values) {
      if (typeof value === "object" && value !== null) stack.push(value, level + 1);
    }
  }
  return false;
}

/** Whether no value needs flattening (no nested object under a key the contract does not read). */
function isFlat(obj: Record<string, unknown>): boolean {
  for (const key in obj) {
    const value = obj[key];
    if (typeof value === "object" && value !== null && !Array.isArray(value) && !KNOWN.has(key)) return false;
  }
  return true;
}

function emptyToNull(s: string | null | undefined): string | null {
  return s === undefined || s === null || s.trim() === "" ? null : s;
}

/** Latest epoch second PostgreSQL's `date` and JS `Date` both represent comfortably (year 9999). */
export const MAX_EPOCH = 253402300799;

function epochSeconds(t: string | number | null | undefined): number | null {
  if (t === null || t === undefined) return null;
  const n = typeof t === "number" ? t : (t.trim() === "" ? NaN : Number(t));
  return Number.isFinite(n) && n >= 0 && n <= MAX_EPOCH ? n : null;
}

/**
 * Parses one SQS message body into login fields, or a rejection with a specific reason.
 *
 * @example
 * ```ts
 * parseBody('{"user_id":"u1","app_version":"2.3.0","ip":"10.0.0.1"}');
 * // { ok: true, fields: { userId: "u1", appVersion: 2003000, ip: "10.0.0.1", ... } }
 * parseBody('{"foo":"x","bar":"123"}'); // { ok: false, reason: "user_id is missing", json: {...} }
 * ```
 */
export function parseBody(body: string): ParseResult {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    // V8's message quotes the offending token and part of the body, which may be personal: only the
    // position is kept.
    const at = /position (\d+)/.exec(err instanceof Error ? err.message : "");
    return {
      ok: false,
      reason: at ? `body is not valid JSON (error at character ${at[1]})` : "body is not valid JSON",
    };
  }
  if (!isPlainObject(json)) {
    return { ok: false, reason: `body must be a JSON object, got ${describe(json)}` };
  }
  if (nestedDeeperThan(json, MAX_DEPTH)) {
    return { ok: false, reason: `body is nested deeper than ${MAX_DEPTH} levels`, json };
  }
  let flat: Record<string, unknown>;
  try {
    // Most bodies are flat already: then the schema reads the body itself (it ignores unknown keys).
    flat = isFlat(json) ? json : flatten(json);
  } catch (err) {
    return { ok: false, reason: (err as Error).message, json };
  }
  if (!("user_id" in flat)) return { ok: false, reason: "user_id is missing", json };
  const result = v.safeParse(LoginSchema, flat, { abortPipeEarly: true });
  if (!result.success) {
    return { ok: false, reason: result.issues.map((i) => i.message).join("; "), json };
  }
  const r = result.output;
  let appVersion: number | null = null;
  if (r.app_version !== null && r.app_version !== undefined) {
    try {
      appVersion = packAppVersion(String(r.app_version));
    } catch (err) {
      return { ok: false, reason: (err as Error).message, json };
    }
  }
  return {
    ok: true,
    fields: {
      userId: r.user_id,
      deviceType: r.device_type ?? null,
      locale: r.locale ?? null,
      ip: emptyToNull(r.ip),
      deviceId: emptyToNull(r.device_id),
      appVersion,
      timestamp: epochSeconds(r.timestamp),
    },
  };
}
