/**
 * message -> sink record: parse, then mask. A valid login becomes a LoginRecord; anything else a
 * RejectionRecord whose redacted body keeps the shape of the original with the PII replaced by tokens.
 */
import type { Message } from "../source/sqs.ts";
import type { LoginRecord, RejectionRecord, SinkRecord } from "../sink/postgres.ts";
import type { Masker } from "./mask.ts";
import { parseBody } from "./parse.ts";

const PII_FIELDS = new Set(["ip", "device_id"]);

/** UTC date "YYYY-MM-DD" of an epoch in milliseconds. */
export function utcDate(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 10);
}

async function tokenFor(field: string, value: unknown, masker: Masker): Promise<unknown> {
  if (value === null || value === undefined) return value;
  const text = typeof value === "string" ? value : JSON.stringify(value);
  if (typeof value === "string" && value.trim() === "") return value;
  return field === "ip" ? await masker.ip(text) : await masker.deviceId(text);
}

/**
 * A JSON copy of a body object with every value that flattens to `ip` or `device_id` replaced by its
 * token (non-string values are masked as their JSON text). Null when the copy cannot be serialised
 * (nesting too deep for JSON.stringify).
 *
 * @example
 * ```ts
 * await redactBody({ user_id: "u", ip: "10.0.0.1" }, masker); // '{"user_id":"u","ip":"<64 hex>"}'
 * ```
 */
export async function redactBody(json: Record<string, unknown>, masker: Masker): Promise<string | null> {
  const copy: Record<string, unknown> = { ...json };
  // A flattened key is "ip"/"device_id" only at the top level or as device.id; walk those two levels.
  for (const key of Object.keys(copy)) {
    if (PII_FIELDS.has(key)) copy[key] = await tokenFor(key, copy[key], masker);
    const inner = copy[key];
    if (typeof inner === "object" && inner !== null && !Array.isArray(inner)) {
      const innerCopy: Record<string, unknown> = { ...(inner as Record<string, unknown>) };
      for (const k of Object.keys(innerCopy)) {
        const flat = `${key}_${k}`;
        if (PII_FIELDS.has(flat)) innerCopy[k] = await tokenFor(flat, innerCopy[k], masker);
      }
      copy[key] = innerCopy;
    }
  }
  try {
    return JSON.stringify(copy);
  } catch {
    return null;
  }
}

/**
 * Turns one SQS message into the record to store.
 *
 * @example
 * ```ts
 * const rec = await toRecord({ id: "m1", receiptHandle: "r", body: '{"user_id":"u"}', sentTimestamp: 0,
 *   receiveCount: 1 }, masker);
 * rec.kind; // "login"; rec.createDate: "1970-01-01"
 * ```
 */
export async function toRecord(message: Message, masker: Masker): Promise<SinkRecord> {
  const parsed = parseBody(message.body);
  if (!parsed.ok) {
    const rejection: RejectionRecord = {
      kind: "rejection",
      messageId: message.id,
      reason: parsed.reason,
      bodyRedacted: parsed.json ? await redactBody(parsed.json, masker) : null,
    };
    return rejection;
  }
  const f = parsed.fields;
  const login: LoginRecord = {
    kind: "login",
    messageId: message.id,
    userId: f.userId,
    deviceType: f.deviceType,
    locale: f.locale,
    maskedIp: f.ip === null ? null : await masker.ip(f.ip),
    maskedDeviceId: f.deviceId === null ? null : await masker.deviceId(f.deviceId),
    appVersion: f.appVersion,
    createDate: utcDate(f.timestamp !== null ? f.timestamp * 1000 : message.sentTimestamp),
  };
  return login;
}

/** The rejection for a message whose row the database refused. */
export async function rejectionFor(
  message: Message,
  reason: string,
  masker: Masker,
): Promise<RejectionRecord> {
  let json: unknown;
  try {
    json = JSON.parse(message.body);
  } catch { /* not JSON: no redacted copy */ }
  const isObject = typeof json === "object" && json !== null && !Array.isArray(json);
  return {
    kind: "rejection",
    messageId: message.id,
    reason,
    bodyRedacted: isObject ? await redactBody(json as Record<string, unknown>, masker) : null,
  };
}
