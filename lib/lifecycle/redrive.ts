/**
 * Replaying dead letters: each letter's original body is decrypted from its `masq_original` attribute
 * (vault key, bound to the original message id) and sent back to the source queue, then the letter is
 * deleted. Letters without an encrypted original, under another vault key, or from another queue are left
 * in the dead-letter queue (made visible again) and counted.
 *
 * Send, then delete: a crash between the two leaves the letter in the DLQ, and the next redrive sends it
 * again, as a new SQS message id. Each replay carries `masq_redrive_id`, the letter's own message id in the
 * DLQ, which stays the same across such attempts: masq run (over the JSON protocol) keys its ledger on it
 * (`redrive:<id>`), so the second copy is counted as a duplicate, not written twice.
 * `masq_original_message_id` names the message the letter came from.
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
import type { Logger } from "../log.ts";
import { deadLetterAad } from "../transform/dead_letter.ts";
import { fromBase64, type VaultCipher, VaultError } from "../vault.ts";
import { inTransaction, logAccess } from "./db.ts";

export interface RedriveOptions {
  sqs: SQSClient;
  db: pg.Client;
  dlqUrl: string;
  queueUrl: string;
  vault: VaultCipher;
  dryRun: boolean;
  /** Stop after this many letters were looked at. */
  max: number;
  who: { osUser: string; reason: string };
  log: Logger;
}

export interface RedriveResult {
  /** Sent back to the source queue and deleted from the DLQ (or, with --dry-run, that would be). */
  redriven: number;
  dryRun: boolean;
  /** Left in the DLQ, by why. */
  left: { noOriginal: number; otherVaultKey: number; undecryptable: number; otherQueue: number };
}

const normalise = (url: string) => url.replace(/\/+$/, "");

/**
 * Redrives up to `max` dead letters; see the module comment.
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import { silentLogger } from "../log.ts";
 * import { createSqsClient } from "../source/sqs.ts";
 * import { createVaultCipher } from "../vault.ts";
 * import { redrive, type RedriveOptions, type RedriveResult } from "./redrive.ts";
 *
 * const db = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
 * await db.connect();
 * const opts: RedriveOptions = {
 *   sqs: createSqsClient({ endpoint: "http://localhost:4566", region: "us-east-1" }, "json"),
 *   db,
 *   dlqUrl: "http://localhost:4566/000000000000/login-queue-dlq",
 *   queueUrl: "http://localhost:4566/000000000000/login-queue",
 *   vault: await createVaultCipher(crypto.getRandomValues(new Uint8Array(32)), "v1"),
 *   dryRun: true,
 *   max: 100,
 *   who: { osUser: "ops", reason: "producer fix 1.4.2" },
 *   log: silentLogger,
 * };
 * const result: RedriveResult = await redrive(opts);
 * console.log(result.redriven, result.left);
 * await db.end();
 * ```
 */
export async function redrive(opts: RedriveOptions): Promise<RedriveResult> {
  const { sqs, log } = opts;
  const left = { noOriginal: 0, otherVaultKey: 0, undecryptable: 0, otherQueue: 0 };
  const keep: SqsMessage[] = [];
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
        }),
      );
      const batch = res.Messages ?? [];
      if (batch.length === 0) break;
      seen += batch.length;
      const replay: { m: SqsMessage; id: string; ct: Uint8Array }[] = [];
      for (const m of batch) {
        const a = m.MessageAttributes ?? {};
        const original = a.masq_original?.StringValue;
        const id = a.masq_message_id?.StringValue;
        const source = a.masq_source_queue?.StringValue;
        if (!original || !id) {
          left.noOriginal++;
          keep.push(m);
        } else if (a.masq_key_id?.StringValue !== opts.vault.keyId) {
          left.otherVaultKey++;
          keep.push(m);
        } else if (source !== undefined && normalise(source) !== normalise(opts.queueUrl)) {
          left.otherQueue++;
          keep.push(m);
        } else {
          replay.push({ m, id, ct: fromBase64(original) });
        }
      }
      if (replay.length === 0) continue;
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
        let body: string;
        try {
          body = await opts.vault.decrypt(r.ct, deadLetterAad(r.id));
        } catch (err) {
          if (!(err instanceof VaultError)) throw err;
          log.warn("dead letter does not decrypt; left in the DLQ", { message_id: r.id, error: err.message });
          left.undecryptable++;
          keep.push(r.m);
          continue;
        }
        if (opts.dryRun) {
          redriven++;
          keep.push(r.m);
          continue;
        }
        await sqs.send(
          new SendMessageCommand({
            QueueUrl: opts.queueUrl,
            MessageBody: body,
            MessageAttributes: {
              masq_original_message_id: { DataType: "String", StringValue: r.id },
              masq_redrive_id: { DataType: "String", StringValue: r.m.MessageId! },
              masq_redriven_at: { DataType: "String", StringValue: new Date().toISOString() },
            },
          }),
        );
        await sqs.send(
          new DeleteMessageCommand({ QueueUrl: opts.dlqUrl, ReceiptHandle: r.m.ReceiptHandle! }),
        );
        redriven++;
      }
    }
  } finally {
    // Letters set aside (and all of them in a dry run) become visible again at once.
    for (let i = 0; i < keep.length; i += 10) {
      await sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: opts.dlqUrl,
          Entries: keep.slice(i, i + 10).map((m, j) => ({
            Id: String(j),
            ReceiptHandle: m.ReceiptHandle!,
            VisibilityTimeout: 0,
          })),
        }),
      ).catch((err) => log.warn("could not make set-aside letters visible again", { error: String(err) }));
    }
  }
  return { redriven, dryRun: opts.dryRun, left };
}
