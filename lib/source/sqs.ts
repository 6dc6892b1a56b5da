/**
 * The SQS source: long-poll receive, visibility heartbeat, batch delete, dead-letter forwarding and queue
 * counts, over an injected SDK client. Speaks JSON (current SQS) or the older query protocol (LocalStack
 * before 3.0, the take-home's image) through the SDK's own protocol implementations.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { AwsQueryProtocol } from "@aws-sdk/core/protocols";
import http from "node:http";
import https from "node:https";
import { ConfigError, errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { SqsProtocol } from "../config.ts";
import { systemClock } from "../retry.ts";
import type { DeadLetter, DeadLetterOutcome, ErrorClass, Source } from "../types.ts";
import { createLetterBatcher, type EntryResult } from "./dead_letters.ts";

export type { Message, QueueCounts, Source } from "../types.ts";

/** The SQS source, which also says which wire protocol it speaks. */
export type SqsSource = Source & { readonly protocol: "json" | "query" };

export interface SqsSourceOptions {
  queueUrl: string;
  dlqUrl: string;
  endpoint: string | undefined;
  region: string;
  protocol: SqsProtocol;
  batchSize: number;
  waitSeconds: number;
  visibilityTimeout: number | undefined;
  log: Logger;
  /** Environment, to decide whether dummy credentials are needed for a local endpoint. */
  env?: (name: string) => string | undefined;
  /** Receivers that will poll at once (sizes the connection pool; default 8). */
  concurrency?: number;
}

const QUERY_SETTINGS = {
  defaultNamespace: "com.amazonaws.sqs",
  xmlNamespace: "http://queue.amazonaws.com/doc/2012-11-05/",
  version: "2012-11-05",
};

function isAwsEndpoint(endpoint: string | undefined): boolean {
  if (endpoint === undefined) return true;
  const host = new URL(endpoint).hostname;
  return host.endsWith(".amazonaws.com") || host.endsWith(".amazonaws.com.cn");
}

/**
 * An SQS client for one wire protocol. Against a non-AWS endpoint with no credentials configured in the
 * environment, dummy credentials are used (local emulators accept any).
 * See openSqsSource() for an example.
 */
export function createSqsClient(
  opts: {
    endpoint: string | undefined;
    region: string;
    env?: (name: string) => string | undefined;
    concurrency?: number;
  },
  protocol: "json" | "query",
): SQSClient {
  const env = opts.env ?? (() => undefined);
  // Kept-alive connections, enough for every receiver's long poll plus the deletes, extensions and
  // dead-letter sends beside them, so that no request waits for a socket or pays a new handshake.
  const agent = { keepAlive: true, maxSockets: 2 * (opts.concurrency ?? 8) + 16 };
  const hasCredentials = env("AWS_ACCESS_KEY_ID") !== undefined || env("AWS_PROFILE") !== undefined;
  return new SQSClient({
    region: opts.region,
    ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
    ...(!isAwsEndpoint(opts.endpoint) && !hasCredentials
      ? { credentials: { accessKeyId: "test", secretAccessKey: "test" } }
      : {}),
    // The pipeline retries with its own logged, capped backoff; the SDK adds one quick retry.
    maxAttempts: 2,
    requestHandler: { httpAgent: new http.Agent(agent), httpsAgent: new https.Agent(agent) },
    ...(protocol === "query" ? { protocol: AwsQueryProtocol, protocolSettings: QUERY_SETTINGS } : {}),
  });
}

function status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function errName(err: unknown): string {
  return (err as { name?: string })?.name ?? "";
}

/** True when the queue does not exist (JSON and query protocol spellings). */
export function isMissingQueue(err: unknown): boolean {
  const n = errName(err);
  return n === "QueueDoesNotExist" || n.includes("NonExistentQueue");
}

/** True when the request was cancelled by our own abort signal. */
export function isAbort(err: unknown): boolean {
  return errName(err) === "AbortError";
}

/**
 * The one rule for SQS errors. `transient`: no answer at all (refused, reset, timed out), 5xx, or
 * throttling. `data`: the request's content can never be accepted (a message too long or with invalid
 * contents). `fatal`: every other answer (missing queue, access denied), our own abort, and any
 * TypeError or RangeError (a bug, never an outage).
 * So a 503 `ServiceUnavailable` is `transient` and `new TypeError("x is not a function")` is `fatal`.
 */
export function classify(err: unknown): ErrorClass {
  if (!(err instanceof Error) || err instanceof TypeError || err instanceof RangeError || isAbort(err)) {
    return "fatal";
  }
  const code = status(err);
  if (code === undefined || code >= 500 || code === 429) return "transient";
  const n = errName(err);
  if (/Throttl|RequestLimitExceeded|ServiceUnavailable|InternalError/i.test(n)) return "transient";
  if (isRefusedContent(err)) return "data";
  return "fatal";
}

/** True when SQS refused what was sent as such: too long, invalid characters or attributes. */
function isRefusedContent(err: unknown): boolean {
  return /InvalidMessageContents|InvalidAttributeValue|InvalidParameterValue|MessageTooLong|BatchRequestTooLong|too long|shorter than/i
    .test(`${errName(err)} ${errorMessage(err)}`);
}

/** True for SQS errors worth another try (`classify` says `transient`). */
export function isTransientSqsError(err: unknown): boolean {
  return classify(err) === "transient";
}

/**
 * A JSON text with every character SQS cannot carry (outside XML's character set: U+FFFE, U+FFFF, C0
 * controls, lone surrogates) written as a `\uXXXX` escape: the same JSON value, in characters SQS accepts.
 * A redacted body holds such characters when the original had them as escapes. Characters beyond U+FFFF
 * are escaped too (as their surrogate pair), since some emulators refuse them.
 * So `{"note":"<U+FFFF>"}` becomes `{"note":"\\uffff"}`.
 */
export function sqsSafeJson(json: string): string {
  return json.replace(
    /[^\t\n\r\u0020-\ud7ff\ue000-\ufffd]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** SQS's limit on a message: the body plus every attribute's name, type and value, in bytes. */
export const MAX_MESSAGE_BYTES = 262_144;

const utf8 = new TextEncoder();

/** The size SQS counts for a letter (body, and each attribute's name, data type "String" and value). */
export function letterBytes(letter: DeadLetter): number {
  let n = utf8.encode(letter.body).length;
  for (const [name, value] of Object.entries(letter.attributes)) {
    n += utf8.encode(name).length + "String".length + utf8.encode(value).length;
  }
  return n;
}

/**
 * True when the server answered but not in the protocol we spoke: an old query-only LocalStack answers
 * JSON requests with HTTP 500, other query-only servers with 415 (unsupported media type) or an
 * unknown-operation error, or with a body the JSON parser cannot read.
 */
export function isProtocolMismatch(err: unknown): boolean {
  const code = status(err);
  const n = errName(err);
  const msg = errorMessage(err);
  if (code === undefined) return /Deserializ|Unexpected token|not valid JSON|XML/i.test(msg + n);
  if (code >= 500 || code === 415) return true;
  return /UnknownOperation|MEDIA_TYPE|UnsupportedMediaType|InvalidAction|UnrecognizedClient|MissingAction|Deserializ/i
    .test(n + msg);
}

/** SQS batch calls take at most ten entries. */
export function* batchesOfTen<T>(items: readonly T[]): Generator<T[]> {
  for (let i = 0; i < items.length; i += 10) yield items.slice(i, i + 10);
}

/** SQS accepts only XML characters in attribute values; anything else becomes U+FFFD. */
export function xmlSafe(s: string): string {
  return s.toWellFormed().replace(/[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\ud800-\udfff]/g, "\ufffd");
}

function queueName(url: string): string {
  const parts = new URL(url).pathname.split("/").filter(Boolean);
  return parts[parts.length - 1];
}

async function queueAttributes(client: SQSClient, url: string, signal?: AbortSignal) {
  const res = await client.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: [
        "VisibilityTimeout",
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
        "MessageRetentionPeriod",
      ],
    }),
    signal ? { abortSignal: signal } : {},
  );
  return res.Attributes ?? {};
}

/**
 * Connects to the queue (choosing the protocol in auto mode), makes sure the dead-letter queue exists,
 * and returns the source. Start-up failures are ConfigErrors naming the setting at fault.
 *
 * @example
 * ```ts
 * import {
 *   batchesOfTen,
 *   classify,
 *   createSqsClient,
 *   isAbort,
 *   isMissingQueue,
 *   isProtocolMismatch,
 *   isTransientSqsError,
 *   letterBytes,
 *   MAX_MESSAGE_BYTES,
 *   type Message,
 *   openSqsSource,
 *   type QueueCounts,
 *   type Source,
 *   type SqsSource,
 *   type SqsSourceOptions,
 *   sqsSafeJson,
 *   sqsSource,
 *   xmlSafe,
 * } from "./sqs.ts";
 * import { silentLogger } from "../log.ts";
 * const queueUrl = "http://localhost:4566/000000000000/login-queue";
 * const options: SqsSourceOptions = {
 *   queueUrl, dlqUrl: `${queueUrl}-dlq`, endpoint: "http://localhost:4566", region: "us-east-1",
 *   protocol: "auto", batchSize: 10, waitSeconds: 20, visibilityTimeout: undefined, log: silentLogger,
 * };
 * const source: SqsSource = await openSqsSource(options);
 * const batch: Message[] = await source.receive();
 * const counts: QueueCounts = await source.counts();
 * const letter = { messageId: "m1", body: sqsSafeJson("{}"), attributes: { masq_reason: xmlSafe("bad") } };
 * if (letterBytes(letter) <= MAX_MESSAGE_BYTES) await source.deadLetter(letter);
 * for (const ten of batchesOfTen(batch)) await source.delete(ten);
 * source.close();
 * // Lower level: a client of one protocol, and the source over it.
 * const client = createSqsClient({ endpoint: "http://localhost:4566", region: "us-east-1" }, "json");
 * const plain: Source = sqsSource(client, { ...options, visibilityTimeout: 30 }, "json");
 * plain.close();
 * const err: unknown = new Error("x");
 * console.log(counts, classify(err), isAbort(err), isMissingQueue(err), isProtocolMismatch(err),
 *   isTransientSqsError(err));
 * ```
 */
export async function openSqsSource(opts: SqsSourceOptions): Promise<SqsSource> {
  const { log } = opts;
  const first: "json" | "query" = opts.protocol === "query" ? "query" : "json";
  let protocol = first;
  let client = createSqsClient(opts, protocol);
  let attrs: Record<string, string>;
  try {
    attrs = await queueAttributes(client, opts.queueUrl);
  } catch (err) {
    if (opts.protocol === "auto" && isProtocolMismatch(err)) {
      log.warn("SQS endpoint does not speak the JSON protocol; switching to the query protocol", {
        error: errorMessage(err),
      });
      client.destroy();
      protocol = "query";
      client = createSqsClient(opts, protocol);
      try {
        attrs = await queueAttributes(client, opts.queueUrl);
      } catch (err2) {
        client.destroy();
        throw startupError(err2, opts.queueUrl);
      }
    } else {
      client.destroy();
      throw startupError(err, opts.queueUrl);
    }
  }
  const visibilityTimeout = opts.visibilityTimeout ?? Number(attrs.VisibilityTimeout ?? "30");
  try {
    await queueAttributes(client, opts.dlqUrl);
  } catch (err) {
    if (!isMissingQueue(err)) {
      client.destroy();
      throw new ConfigError(
        "--dlq-url / SQS_DLQ_URL",
        `dead-letter queue did not answer: ${errorMessage(err)}`,
      );
    }
    await createDeadLetterQueue(client, queueName(opts.dlqUrl), attrs.MessageRetentionPeriod, log);
    log.info("created dead-letter queue", { dlq: opts.dlqUrl });
  }
  log.info("connected to SQS", { queue: opts.queueUrl, protocol, visibility_timeout_s: visibilityTimeout });
  return sqsSource(client, { ...opts, visibilityTimeout }, protocol);
}

/**
 * Creates the dead-letter queue with the source queue's retention (a rejected message is kept as long as
 * a good one would be) and SQS-managed encryption at rest (it holds redacted bodies and, with a vault key,
 * encrypted originals). An endpoint that does not know an attribute (older emulators) gets a queue
 * without it, and the log says so.
 */
async function createDeadLetterQueue(
  client: SQSClient,
  name: string,
  retention: string | undefined,
  log: Logger,
): Promise<void> {
  const wanted: Record<string, string> = {
    MessageRetentionPeriod: retention ?? "1209600",
    SqsManagedSseEnabled: "true",
  };
  for (const attributes of [wanted, { MessageRetentionPeriod: wanted.MessageRetentionPeriod }, {}]) {
    try {
      await client.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
      const missing = Object.keys(wanted).filter((k) => !(k in attributes));
      if (missing.length > 0) {
        log.warn("the SQS endpoint refused dead-letter queue attributes; created it without them", {
          missing,
        });
      }
      return;
    } catch (err) {
      if (Object.keys(attributes).length === 0 || classify(err) === "transient" || err instanceof TypeError) {
        throw err;
      }
    }
  }
}

function startupError(err: unknown, url: string): ConfigError {
  const why = isMissingQueue(err) ? "queue does not exist" : `queue did not answer: ${errorMessage(err)}`;
  return new ConfigError("--queue-url / SQS_QUEUE_URL", `${url}: ${why}`);
}

/**
 * How long a dead letter waits for others to share its SendMessageBatch, ms. Only batches holding a
 * rejection wait; at a 1% bad rate this turns about 300 requests per 30,000 messages into a third as many.
 */
export const DEAD_LETTER_LINGER_MS = 20;

function messageAttributes(letter: DeadLetter): Record<string, { DataType: string; StringValue: string }> {
  const attributes: Record<string, { DataType: string; StringValue: string }> = {};
  for (const [name, value] of Object.entries(letter.attributes)) {
    attributes[name] = { DataType: "String", StringValue: value };
  }
  return attributes;
}

/**
 * One entry a SendMessageBatch did not store, as the caller of a single send would have seen it: a letter
 * the queue can never take is `refused`; any other sender fault an error `classify()` calls fatal; a
 * fault of the queue's own an error it calls transient.
 * So `entryFailure("InvalidMessageContents", "...", true)` is `refused`.
 */
export function entryFailure(code: string, message: string, senderFault: boolean): EntryResult {
  const error = Object.assign(new Error(`dead-letter send failed: ${code} ${message}`.trim()), {
    name: code || "SendMessageBatchEntryError",
    ...(senderFault ? { $metadata: { httpStatusCode: 400 } } : {}),
  });
  if (senderFault && classify(error) === "data") {
    return { status: "refused", why: `refused by the dead-letter queue (${code || "invalid"})` };
  }
  return { status: "failed", error };
}

/** The attribute `masq redrive` puts on a replayed message: the dead letter's own message id. */
export const REDRIVE_ID = "masq_redrive_id";
const SQS_MESSAGE_ID = /^[A-Za-z0-9-]{1,100}$/;

/**
 * The id masq keys a message by (its ledger entry, its rejection, its logs): the SQS message id, or for a
 * message `masq redrive` replayed, `redrive:` and the dead letter's id, which every replay of one letter
 * shares (a redrive that crashed between its send and its delete sends the letter again under a new SQS
 * message id). So `messageKey("m-2", "d-1")` is `"redrive:d-1"` and `messageKey("m-2", undefined)` is `"m-2"`.
 */
export function messageKey(sqsMessageId: string, redriveId: string | undefined): string {
  return redriveId !== undefined && SQS_MESSAGE_ID.test(redriveId) ? `redrive:${redriveId}` : sqsMessageId;
}

/** The source over an already configured client (openSqsSource() builds the client and checks the queues). */
export function sqsSource(
  client: SQSClient,
  opts: Omit<SqsSourceOptions, "visibilityTimeout"> & { visibilityTimeout: number },
  protocol: "json" | "query",
): SqsSource {
  const { log } = opts;

  /** One letter in a SendMessage of its own: the way back when a batch as a whole is refused. */
  async function sendOne(letter: DeadLetter): Promise<DeadLetterOutcome> {
    try {
      await client.send(
        new SendMessageCommand({
          QueueUrl: opts.dlqUrl,
          MessageBody: letter.body,
          MessageAttributes: messageAttributes(letter),
        }),
      );
    } catch (err) {
      if (classify(err) !== "data") throw err;
      return { status: "refused", why: `refused by the dead-letter queue (${errName(err) || "invalid"})` };
    }
    return { status: "sent" };
  }

  async function sendBatch(letters: readonly DeadLetter[]): Promise<EntryResult[]> {
    if (letters.length === 1) return [await sendOne(letters[0])];
    let res;
    try {
      res = await client.send(
        new SendMessageBatchCommand({
          QueueUrl: opts.dlqUrl,
          Entries: letters.map((letter, i) => ({
            Id: String(i),
            MessageBody: letter.body,
            MessageAttributes: messageAttributes(letter),
          })),
        }),
      );
    } catch (err) {
      // A batch refused as a whole (one letter SQS will not take spoils the request): each letter alone,
      // so that only the one at fault is refused.
      if (classify(err) !== "data") throw err;
      const results: EntryResult[] = [];
      for (const letter of letters) {
        try {
          results.push(await sendOne(letter));
        } catch (one) {
          results.push({ status: "failed", error: one instanceof Error ? one : new Error(String(one)) });
        }
      }
      return results;
    }
    // Sent unless named in Failed, with the count checked below: keying outcomes by the Successful entries'
    // Ids instead fails against sqslite (the query-only emulator in the tests), whose answer does not
    // carry them usably.
    const results: EntryResult[] = letters.map(() => ({ status: "sent" }));
    for (const f of res.Failed ?? []) {
      const i = Number(f.Id);
      if (!(i >= 0 && i < letters.length)) continue;
      results[i] = entryFailure(f.Code ?? "", f.Message ?? "", f.SenderFault === true);
    }
    if ((res.Successful?.length ?? 0) + (res.Failed?.length ?? 0) < letters.length) {
      throw new Error("SendMessageBatch answered for fewer letters than it was sent");
    }
    return results;
  }

  const sendLetter = createLetterBatcher({
    sendBatch,
    bytes: letterBytes,
    maxBatchBytes: MAX_MESSAGE_BYTES,
    lingerMs: DEAD_LETTER_LINGER_MS,
    clock: systemClock,
  });

  return {
    queueUrl: opts.queueUrl,
    visibilityTimeout: opts.visibilityTimeout,
    protocol,
    classify,
    async receive(signal) {
      const res = await client.send(
        new ReceiveMessageCommand({
          QueueUrl: opts.queueUrl,
          MaxNumberOfMessages: opts.batchSize,
          WaitTimeSeconds: opts.waitSeconds,
          VisibilityTimeout: opts.visibilityTimeout,
          MessageSystemAttributeNames: ["SentTimestamp", "ApproximateReceiveCount"],
          // The query protocol of older emulators knows only the legacy name; JSON speakers are asked for
          // the two attributes read, not all (each one returned is parsed for every message). The replay
          // key is asked for over JSON only: sqslite, a query-only emulator, fails any receive that names a
          // message attribute its messages lack.
          ...(protocol === "query"
            ? { AttributeNames: ["All" as const] }
            : { MessageAttributeNames: [REDRIVE_ID] }),
        }),
        signal ? { abortSignal: signal } : {},
      );
      return (res.Messages ?? []).map((m) => ({
        id: messageKey(m.MessageId ?? "", m.MessageAttributes?.[REDRIVE_ID]?.StringValue),
        receiptHandle: m.ReceiptHandle ?? "",
        body: m.Body ?? "",
        sentTimestamp: Number(m.Attributes?.SentTimestamp ?? Date.now()),
        receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 1),
      }));
    },
    async delete(messages) {
      for (const chunk of batchesOfTen(messages)) {
        const res = await client.send(
          new DeleteMessageBatchCommand({
            QueueUrl: opts.queueUrl,
            Entries: chunk.map((m, j) => ({ Id: String(j), ReceiptHandle: m.receiptHandle })),
          }),
        );
        for (const f of res.Failed ?? []) {
          // Usually an expired receipt handle: the message was redelivered and will be seen as a duplicate.
          log.warn("delete refused for one message", {
            message_id: chunk[Number(f.Id)]?.id,
            code: f.Code,
            reason: f.Message,
          });
        }
      }
    },
    async extendVisibility(messages) {
      for (const chunk of batchesOfTen(messages)) {
        const res = await client.send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: opts.queueUrl,
            Entries: chunk.map((m, j) => ({
              Id: String(j),
              ReceiptHandle: m.receiptHandle,
              VisibilityTimeout: opts.visibilityTimeout,
            })),
          }),
        );
        if (res.Failed?.length) {
          // Usually expired receipt handles (an SQS outage outlasted the visibility timeout): these messages
          // may be delivered again meanwhile; their writes stay idempotent, but say so.
          log.warn("visibility extension refused", {
            messages: res.Failed.length,
            code: res.Failed[0].Code,
            message_ids: res.Failed.map((f) => chunk[Number(f.Id)]?.id),
          });
        }
      }
    },
    async deadLetter(original): Promise<DeadLetterOutcome> {
      // Every dead letter's body is JSON (a redacted body, or a note that it was not JSON).
      const letter = { ...original, body: sqsSafeJson(original.body) };
      // Checked here, not left to SQS: an emulator may accept what SQS refuses, and SQS may answer a
      // too-large message with an error that looks like any other client error.
      if (letterBytes(letter) > MAX_MESSAGE_BYTES) {
        return { status: "refused", why: "too large for the dead-letter queue" };
      }
      return await sendLetter(letter);
    },
    async counts() {
      const a = await queueAttributes(client, opts.queueUrl);
      return {
        visible: Number(a.ApproximateNumberOfMessages ?? 0),
        inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? 0),
        delayed: Number(a.ApproximateNumberOfMessagesDelayed ?? 0),
      };
    },
    close() {
      client.destroy();
    },
  };
}
