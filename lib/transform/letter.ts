/**
 * The dead-letter message for a rejected message: its redacted body (never the raw one), what happened
 * as attributes, and the original body only AES-256-GCM encrypted under the vault key when one is
 * configured, so that an authorised replay (`masq redrive`) can restore it later.
 *
 * @module
 */
import type { DeadLetter, Message } from "../types.ts";
import { type IngestVault, toBase64 } from "../vault.ts";

/** The additional data an encrypted DLQ original is bound to: its message id. */
export function deadLetterAad(messageId: string): string {
  return `dlq:${messageId}`;
}

/** SQS accepts only XML characters in attribute values; anything else becomes U+FFFD. */
export function xmlSafe(s: string): string {
  return s.toWellFormed().replace(/[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\ud800-\udfff]/g, "\ufffd");
}

/**
 * Builds the dead-letter message of `message`.
 *
 * @param redactedBody the body as `user_logins_rejected.body_redacted` holds it (null when not JSON)
 * @param sourceQueue the URL of the queue the message came from
 * @param vault the vault cipher, when a vault key is configured
 *
 * @example
 * ```ts
 * import { deadLetterFor } from "./letter.ts";
 * const letter = await deadLetterFor(
 *   { id: "m1", receiptHandle: "r", body: "not json", sentTimestamp: 0, receiveCount: 1 },
 *   "body is not valid JSON", null, "http://localhost:4566/000000000000/login-queue", undefined,
 * );
 * letter.attributes.masq_reason; // "body is not valid JSON"
 * ```
 */
export async function deadLetterFor(
  message: Message,
  reason: string,
  redactedBody: string | null,
  sourceQueue: string,
  vault: IngestVault | undefined,
): Promise<DeadLetter> {
  const attributes: Record<string, string> = {
    // Reasons name fields, never values (parseBody's by construction; a driver's is scrubbed by
    // rejectionFor()), so the reason is sent as it is.
    masq_reason: xmlSafe(reason.slice(0, 1024)),
    masq_message_id: message.id,
    masq_source_queue: sourceQueue,
    masq_sent_timestamp: String(message.sentTimestamp),
  };
  if (vault !== undefined && "kind" in vault) {
    // Sealed to the person the body names (or the privacy officer's key): masq run cannot open it.
    Object.assign(attributes, await vault.letter(message.id, message.body));
  } else if (vault !== undefined) {
    attributes.masq_original = toBase64(await vault.encrypt(message.body, deadLetterAad(message.id)));
    attributes.masq_key_id = vault.keyId;
  }
  // SQS refuses an empty body; a body that was not JSON has no redacted form.
  return {
    messageId: message.id,
    body: redactedBody ?? '{"masq":"body was not JSON; not kept"}',
    attributes,
    ...(message.groupId !== undefined ? { groupId: message.groupId } : {}),
  };
}
