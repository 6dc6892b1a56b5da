/**
 * message -> sink record: parse, then mask. A valid login becomes a LoginRecord (with its encrypted
 * originals for the vault, when a vault key is configured); anything else a RejectionRecord whose
 * redacted body keeps the shape of the original with every non-allow-listed value replaced.
 *
 * @module
 */
import type { LoginRecord, Masker, Message, RejectionRecord, SinkRecord, VaultEntry } from "../types.ts";
import { type IngestVault, vaultAad } from "../vault.ts";
import { type LoginFields, parseBody } from "./parse.ts";
import { redactBody, scrubReason } from "./redact.ts";

export { redactBody } from "./redact.ts";

const MS_PER_DAY = 86_400_000;
/** Dates by day number: logins cluster on a few days, and formatting a Date costs a few microseconds. */
const dates = new Map<number, string>();

/** UTC date "YYYY-MM-DD" of an epoch in milliseconds. */
export function utcDate(epochMs: number): string {
  const day = Math.floor(epochMs / MS_PER_DAY);
  let date = dates.get(day);
  if (date === undefined) {
    date = new Date(day * MS_PER_DAY).toISOString().slice(0, 10);
    if (dates.size >= 1024) dates.clear();
    dates.set(day, date);
  }
  return date;
}

/**
 * Turns one SQS message into the record to store, synchronously (no vault).
 *
 * @example
 * ```ts
 * import { toRecordSync } from "./record.ts";
 * import { createMasker } from "./mask.ts";
 * const rec = toRecordSync(
 *   { id: "m1", receiptHandle: "r", body: '{"user_id":"u"}', sentTimestamp: 0, receiveCount: 1 },
 *   createMasker("example-key"),
 * );
 * rec.kind; // "login"
 * ```
 */
export function toRecordSync(message: Message, masker: Masker): SinkRecord {
  return build(message, masker).record;
}

function build(message: Message, masker: Masker): { record: SinkRecord; fields?: LoginFields } {
  const parsed = parseBody(message.body);
  if (!parsed.ok) {
    const rejection: RejectionRecord = {
      kind: "rejection",
      messageId: message.id,
      reason: parsed.reason,
      bodyRedacted: parsed.json ? redactBody(parsed.json, masker, message.sentTimestamp) : null,
    };
    return { record: rejection };
  }
  const f = parsed.fields;
  const login: LoginRecord = {
    kind: "login",
    messageId: message.id,
    userId: f.userId,
    deviceType: f.deviceType,
    locale: f.locale,
    maskedIp: f.ip === null ? null : masker.ip(f.ip),
    maskedDeviceId: f.deviceId === null ? null : masker.deviceId(f.deviceId),
    appVersion: f.appVersion,
    createDate: utcDate(f.timestamp !== null ? f.timestamp * 1000 : message.sentTimestamp),
  };
  return { record: login, fields: f };
}

/**
 * Turns one SQS message into the record to store. With a vault cipher, a login also carries one
 * VaultEntry per personal value it masked: the original, AES-256-GCM encrypted and bound to its field,
 * token and HMAC key id.
 *
 * @example
 * ```ts
 * import { toRecord } from "./record.ts";
 * import { createMasker } from "./mask.ts";
 * const rec = await toRecord(
 *   { id: "m1", receiptHandle: "r", body: '{"user_id":"u"}', sentTimestamp: 0, receiveCount: 1 },
 *   createMasker("example-key"),
 * );
 * rec.kind; // "login"; rec.createDate: "1970-01-01"
 * ```
 */
export async function toRecord(message: Message, masker: Masker, vault?: IngestVault): Promise<SinkRecord> {
  const { record, fields } = build(message, masker);
  if (vault === undefined || record.kind !== "login" || fields === undefined) return record;
  const entries: VaultEntry[] = [];
  const add = async (field: VaultEntry["field"], original: string | null, token: string | null) => {
    if (original === null || token === null) return;
    // Sealed: to the person's own key (lib/sealing.ts), so that forgetting them erases it everywhere.
    if ("kind" in vault) {
      return void entries.push(await vault.entry(field, token, masker.keyId, record.userId, original));
    }
    entries.push({
      field,
      token,
      ciphertext: await vault.encrypt(original, vaultAad(field, token, masker.keyId)),
      keyId: masker.keyId,
    });
  };
  await add("ip", fields.ip, record.maskedIp);
  await add("device_id", fields.deviceId, record.maskedDeviceId);
  return { ...record, vault: entries };
}

/**
 * The rejection for a message whose row the database refused. The reason (a database error, say) is
 * scrubbed of quoted text and addresses first: a driver's message may quote the value it refused.
 *
 * @example
 * ```ts
 * import { rejectionFor } from "./record.ts";
 * import { createMasker } from "./mask.ts";
 * const r = rejectionFor(
 *   { id: "m1", receiptHandle: "r", body: '{"user_id":"u"}', sentTimestamp: 0, receiveCount: 1 },
 *   'invalid input syntax for type integer: "10.0.0.1"',
 *   createMasker("example-key"),
 * );
 * r.reason; // 'invalid input syntax for type integer: "..."'
 * ```
 */
export function rejectionFor(message: Message, reason: string, masker: Masker): RejectionRecord {
  let json: unknown;
  try {
    json = JSON.parse(message.body);
  } catch { /* not JSON: no redacted copy */ }
  return {
    kind: "rejection",
    messageId: message.id,
    reason: scrubReason(reason),
    bodyRedacted: redactBody(json, masker, message.sentTimestamp),
  };
}
