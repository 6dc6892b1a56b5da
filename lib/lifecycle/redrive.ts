/**
 * Replaying dead letters: each letter's original body is decrypted from its `masq_original` attribute
 * (vault key, bound to the original message id) and sent back to the source queue, then the letter is
 * deleted. A letter that cannot be replayed is set aside (left in the dead-letter queue, made visible again
 * at the end) and counted by why; it never stops the letters behind it. Every attribute of a letter is
 * vetted before it is used, and none reaches a log line or the access log unless it has a known shape.
 *
 * Send, then delete: a crash between the two leaves the letter in the DLQ, and the next redrive sends it
 * again, as a new SQS message id. Each replay carries `masq_redrive_id`, the letter's own message id in the
 * DLQ, which stays the same across such attempts, and `masq_redrive_mac`, that id's token under the HMAC key
 * (domain `redrive`): masq run (over the JSON protocol) keys its ledger on `redrive:<id>` only when the MAC
 * verifies under its own key, so the second copy is counted as a duplicate, not written twice, and a
 * producer cannot forge a replay key. A letter redriven under another HMAC key than masq run's (during a
 * key rotation) is keyed by its new SQS message id, with a warning: should that redrive also have crashed
 * between send and delete, its two copies are two messages. `masq_original_message_id` names the message
 * the letter came from.
 *
 * @module
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageCommand,
  type Message as SqsMessage,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type pg from "pg";
import { redactUrl } from "../secrets.ts";
import { errorMessage, VaultError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { classify, isSqsMessageId, REDRIVE_ID, REDRIVE_MAC, type RedriveVerifier } from "../source/sqs.ts";
import { deduplicationId, FALLBACK_GROUP_ID, isFifoQueue } from "../source/queue_name.ts";
import { deadLetterAad } from "../transform/letter.ts";
import { createMasker } from "../transform/mask.ts";
import type { Masker } from "../types.ts";
import { fromBase64, type VaultCipher } from "../vault.ts";
import { SEALED_ATTRIBUTE } from "../seal.ts";
import { RefusedSeal, type Unsealer } from "./unseal.ts";
import { inTransaction, logAccess } from "./db.ts";

/** The domain of a replay key's MAC: no other token masq makes is under it. */
export const REDRIVE_MAC_DOMAIN = "redrive";

/** The MAC `masq redrive` puts on a replay of the dead letter `letterId` (64 hex). */
export function redriveMac(masker: Pick<Masker, "token">, letterId: string): string {
  return masker.token(REDRIVE_MAC_DOMAIN, letterId);
}

/** Compares two strings in a time that depends on their length only. */
export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** The verifier `masq run` gives its source: true when `mac` is redriveMac() of the id under this key. */
export function redriveVerifier(masker: Pick<Masker, "token">): RedriveVerifier {
  return (letterId, mac) => constantTimeEqual(redriveMac(masker, letterId), mac);
}

export interface RedriveOptions {
  sqs: SQSClient;
  db: pg.Client;
  dlqUrl: string;
  queueUrl: string;
  /** The old symmetric key, for letters dead-lettered under it (masq_original). */
  vault?: VaultCipher;
  /** The sealed vault's unsealer, for sealed letters (masq_sealed). */
  unsealer?: Unsealer;
  /** The HMAC key `masq run` uses: it signs each replay's `masq_redrive_id`. */
  hmacKey: string;
  dryRun: boolean;
  /** Stop after this many letters were looked at. */
  max: number;
  who: { osUser: string; reason: string };
  log: Logger;
}

/** Letters left in the dead-letter queue, by why. */
export interface RedriveLeft {
  /** No encrypted original (dead-lettered without a vault key). */
  noOriginal: number;
  /** Encrypted under another vault key id. */
  otherVaultKey: number;
  /** Dead-lettered from another source queue. */
  otherQueue: number;
  /** The original does not decrypt under the vault key (a wrong key, or an altered letter). */
  undecryptable: number;
  /** `masq_original` is not base64 of a ciphertext. */
  malformedOriginal: number;
  /** `masq_message_id` is missing or not shaped like a message id masq keys by. */
  badMessageId: number;
  /** The source queue refused the restored body (too large for it, say). */
  refusedBySourceQueue: number;
  /** Sealed to a subject key that forget destroyed: erased, it can never be replayed. */
  erased: number;
  /** A sealed original masq did not seal (its MAC does not verify): never opened. */
  notSealedByMasq: number;
  /**
   * FIFO queues: behind a letter of its message group that was set aside, so not replayed either (a later
   * message of a group must not overtake an earlier one).
   */
  behindInGroup: number;
  /** Anything else a letter of masq's never has: no receipt handle, an attribute that is not a string. */
  unexpected: number;
}

export interface RedriveResult {
  /** Sent back to the source queue and deleted from the DLQ (or, with --dry-run, that would be). */
  redriven: number;
  dryRun: boolean;
  /** Left in the DLQ, by why. */
  left: RedriveLeft;
}

/** A message id masq keys by: an SQS message id, or `redrive:` and one. */
function isMessageKey(text: string): boolean {
  return isSqsMessageId(text.startsWith("redrive:") ? text.slice("redrive:".length) : text);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** A vault ciphertext holds a 12-byte IV and a 16-byte tag at least. */
const MIN_CIPHERTEXT_BYTES = 28;

/** A letter fit to decrypt, or why it is set aside. */
type Vetted = { ok: true; letterId: string; id: string; ct?: Uint8Array; sealed?: string } | {
  ok: false;
  why: keyof RedriveLeft;
};

/** The string value of a letter's attribute; null when it is there but not a string. */
function stringAttribute(m: SqsMessage, name: string): string | undefined | null {
  const a = m.MessageAttributes?.[name];
  if (a === undefined) return undefined;
  return a.DataType === "String" && typeof a.StringValue === "string" ? a.StringValue : null;
}

function vet(m: SqsMessage, opts: RedriveOptions): Vetted {
  const letterId = m.MessageId;
  if (!m.ReceiptHandle || letterId === undefined || !isSqsMessageId(letterId)) {
    return { ok: false, why: "unexpected" };
  }
  const original = stringAttribute(m, "masq_original");
  const id = stringAttribute(m, "masq_message_id");
  const keyId = stringAttribute(m, "masq_key_id");
  const source = stringAttribute(m, "masq_source_queue");
  const sealed = stringAttribute(m, SEALED_ATTRIBUTE);
  if ([original, id, keyId, source, sealed].includes(null)) return { ok: false, why: "unexpected" };
  if (sealed !== undefined && sealed !== null && sealed !== "") {
    if (id === undefined || id === null || !isMessageKey(id)) return { ok: false, why: "badMessageId" };
    if (opts.unsealer === undefined) return { ok: false, why: "otherVaultKey" };
    if (source !== undefined && source !== null && sameQueue(source, opts.queueUrl) === false) {
      return { ok: false, why: "otherQueue" };
    }
    return { ok: true, letterId, id, sealed };
  }
  if (original === undefined || original === "") return { ok: false, why: "noOriginal" };
  if (id === undefined || id === null || !isMessageKey(id)) return { ok: false, why: "badMessageId" };
  if (opts.vault === undefined || keyId !== opts.vault.keyId) return { ok: false, why: "otherVaultKey" };
  // Compared as printed (credentials dropped), the way masq run wrote it.
  if (source !== undefined && source !== null && sameQueue(source, opts.queueUrl) === false) {
    return { ok: false, why: "otherQueue" };
  }
  if (!BASE64.test(original!)) return { ok: false, why: "malformedOriginal" };
  const ct = fromBase64(original!);
  if (ct.length < MIN_CIPHERTEXT_BYTES) return { ok: false, why: "malformedOriginal" };
  return { ok: true, letterId, id, ct };
}

function sameQueue(a: string, b: string): boolean {
  const normalise = (url: string) => redactUrl(url).replace(/\/+$/, "");
  return normalise(a) === normalise(b);
}

/**
 * Redrives up to `max` dead letters; see the module comment.
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import { silentLogger } from "../log.ts";
 * import { createSqsClient } from "../source/sqs.ts";
 * import { createMasker } from "../transform/mask.ts";
 * import { createVaultCipher } from "../vault.ts";
 * import {
 *   constantTimeEqual,
 *   redrive,
 *   REDRIVE_MAC_DOMAIN,
 *   redriveMac,
 *   type RedriveLeft,
 *   type RedriveOptions,
 *   type RedriveResult,
 *   redriveVerifier,
 * } from "./redrive.ts";
 *
 * const db = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
 * await db.connect();
 * const hmacKey = "an HMAC key of 32 bytes or more, the one masq run uses";
 * const opts: RedriveOptions = {
 *   sqs: createSqsClient({ endpoint: "http://localhost:4566", region: "us-east-1" }, "json"),
 *   db,
 *   dlqUrl: "http://localhost:4566/000000000000/login-queue-dlq",
 *   queueUrl: "http://localhost:4566/000000000000/login-queue",
 *   vault: await createVaultCipher(crypto.getRandomValues(new Uint8Array(32)), "v1"),
 *   hmacKey,
 *   dryRun: true,
 *   max: 100,
 *   who: { osUser: "ops", reason: "producer fix 1.4.2" },
 *   log: silentLogger,
 * };
 * const result: RedriveResult = await redrive(opts);
 * const left: RedriveLeft = result.left;
 * console.log(result.redriven, left.malformedOriginal);
 * // What masq run checks a replay against: the same key's token of the letter id.
 * const masker = createMasker(hmacKey);
 * const letterId = "0b9c6f1e-1d2a-4c7e-9a51-2f8e5b7c3d10";
 * console.log(redriveVerifier(masker)(letterId, redriveMac(masker, letterId)), REDRIVE_MAC_DOMAIN);
 * console.log(constantTimeEqual("ab", "ab")); // true
 * await db.end();
 * ```
 */
export async function redrive(opts: RedriveOptions): Promise<RedriveResult> {
  const { sqs, log } = opts;
  const masker = createMasker(opts.hmacKey);
  const left: RedriveLeft = {
    noOriginal: 0,
    otherVaultKey: 0,
    otherQueue: 0,
    undecryptable: 0,
    malformedOriginal: 0,
    badMessageId: 0,
    refusedBySourceQueue: 0,
    erased: 0,
    notSealedByMasq: 0,
    behindInGroup: 0,
    unexpected: 0,
  };
  // FIFO: the groups in which a letter was set aside; the letters behind it stay in the DLQ too. A replay
  // goes to the letter's own group (the rejected message's) with a deduplication id of the letter's, so
  // that a redrive repeated after a crash between send and delete is stored once within SQS's window.
  const fifo = isFifoQueue(opts.queueUrl);
  const groupOf = (m: SqsMessage) => m.Attributes?.MessageGroupId ?? FALLBACK_GROUP_ID;
  const blocked = new Set<string>();
  // Letters set aside, by their id in the DLQ (a letter seen twice, its visibility having run out, is
  // counted once and made visible with its latest receipt handle).
  const keep = new Map<string, SqsMessage>();
  const setAside = (m: SqsMessage, why: keyof RedriveLeft) => {
    left[why]++;
    if (m.ReceiptHandle) keep.set(m.MessageId ?? m.ReceiptHandle, m);
    // The letter's id in the DLQ is named only when it has the shape SQS gives it.
    log.warn("dead letter set aside; left in the DLQ", {
      why,
      ...(m.MessageId !== undefined && isSqsMessageId(m.MessageId) ? { letter_id: m.MessageId } : {}),
    });
  };
  let seen = 0;
  let redriven = 0;
  try {
    while (seen < opts.max) {
      const res = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: opts.dlqUrl,
          MaxNumberOfMessages: Math.min(10, opts.max - seen),
          WaitTimeSeconds: 1,
          // Long enough to replay a batch; letters set aside are made visible again at the end.
          VisibilityTimeout: 120,
          MessageAttributeNames: ["All"],
          ...(fifo ? { MessageSystemAttributeNames: ["MessageGroupId" as const] } : {}),
        }),
      );
      const received = res.Messages ?? [];
      if (received.length === 0) break;
      const batch = received.filter((m) => {
        const again = m.MessageId !== undefined && keep.has(m.MessageId);
        if (again) keep.set(m.MessageId!, m);
        return !again;
      });
      // Only letters already set aside came back (their visibility ran out): received, so hidden again.
      if (batch.length === 0) continue;
      seen += batch.length;
      const replay: { m: SqsMessage; letterId: string; id: string; ct?: Uint8Array; sealed?: string }[] = [];
      // Groups blocked by a letter of this batch that failed its vetting: only the letters after it.
      const vetBlocked = new Set<string>();
      for (const m of batch) {
        if (fifo && (blocked.has(groupOf(m)) || vetBlocked.has(groupOf(m)))) {
          setAside(m, "behindInGroup");
          continue;
        }
        const v = vet(m, opts);
        if (v.ok) replay.push({ m, letterId: v.letterId, id: v.id, ct: v.ct, sealed: v.sealed });
        else {
          setAside(m, v.why);
          vetBlocked.add(groupOf(m));
        }
      }
      if (replay.length === 0) {
        for (const g of vetBlocked) blocked.add(g);
        continue;
      }
      // The access is on record before any original is decrypted.
      await inTransaction(opts.db, () =>
        logAccess(
          opts.db,
          replay.map((r) => ({
            action: "redrive" as const,
            osUser: opts.who.osUser,
            reason: opts.who.reason,
            messageId: r.id,
            outcome: opts.dryRun ? "decrypted (dry run)" : "decrypted for redrive",
          })),
        ));
      for (const r of replay) {
        if (fifo && blocked.has(groupOf(r.m))) {
          setAside(r.m, "behindInGroup");
          continue;
        }
        let body: string;
        try {
          if (r.sealed !== undefined) {
            const opened = await opts.unsealer!.letter(r.id, r.sealed);
            if (opened.status === "erased") {
              log.warn("dead letter was erased (its subject key is destroyed); left in the DLQ", {
                message_id: r.id,
              });
              left.erased++;
              keep.set(r.letterId, r.m);
              continue;
            }
            body = opened.original;
          } else body = await opts.vault!.decrypt(r.ct!, deadLetterAad(r.id));
        } catch (err) {
          if (err instanceof RefusedSeal) {
            log.warn("dead letter refused: masq did not seal it; left in the DLQ", {
              message_id: r.id,
              error: err.message,
            });
            left.notSealedByMasq++;
            keep.set(r.letterId, r.m);
            continue;
          }
          if (!(err instanceof VaultError)) throw err;
          log.warn("dead letter does not decrypt; left in the DLQ", { message_id: r.id, error: err.message });
          left.undecryptable++;
          keep.set(r.letterId, r.m);
          blocked.add(groupOf(r.m));
          continue;
        }
        if (opts.dryRun) {
          redriven++;
          keep.set(r.letterId, r.m);
          continue;
        }
        try {
          await sqs.send(
            new SendMessageCommand({
              QueueUrl: opts.queueUrl,
              MessageBody: body,
              MessageAttributes: {
                masq_original_message_id: { DataType: "String", StringValue: r.id },
                [REDRIVE_ID]: { DataType: "String", StringValue: r.letterId },
                [REDRIVE_MAC]: { DataType: "String", StringValue: redriveMac(masker, r.letterId) },
                masq_redriven_at: { DataType: "String", StringValue: new Date().toISOString() },
              },
              ...(fifo
                ? {
                  MessageGroupId: groupOf(r.m),
                  MessageDeduplicationId: deduplicationId("redrive", r.letterId),
                }
                : {}),
            }),
          );
        } catch (err) {
          if (classify(err) !== "data") throw err;
          // The error's name only: its message may quote what was refused.
          log.warn("the source queue refused a restored original; left in the DLQ", {
            message_id: r.id,
            error: (err as Error).name,
          });
          setAside(r.m, "refusedBySourceQueue");
          blocked.add(groupOf(r.m));
          continue;
        }
        await sqs.send(
          new DeleteMessageCommand({ QueueUrl: opts.dlqUrl, ReceiptHandle: r.m.ReceiptHandle! }),
        );
        redriven++;
      }
      for (const g of vetBlocked) blocked.add(g);
    }
  } finally {
    // Letters set aside (and all of them in a dry run) become visible again at once.
    const aside = [...keep.values()];
    for (let i = 0; i < aside.length; i += 10) {
      await sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: opts.dlqUrl,
          Entries: aside.slice(i, i + 10).map((m, j) => ({
            Id: String(j),
            ReceiptHandle: m.ReceiptHandle!,
            VisibilityTimeout: 0,
          })),
        }),
      ).catch((err) =>
        log.warn("could not make set-aside letters visible again", { error: errorMessage(err) })
      );
    }
  }
  return { redriven, dryRun: opts.dryRun, left };
}
