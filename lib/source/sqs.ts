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
  type MessageAttributeValue,
  type QueueAttributeName,
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
import { redactUrl } from "../secrets.ts";
import { isAwsHost, type SqsProtocol } from "../config.ts";
import { systemClock } from "../clock.ts";
import type { DeadLetter, DeadLetterOutcome, ErrorClass, Source } from "../types.ts";
import { createLetterBatcher, type EntryResult } from "./letter_batcher.ts";
import { deduplicationId, FALLBACK_GROUP_ID, isFifoQueue, queueNameOf } from "./queue_name.ts";

export type { Message, QueueCounts, Source } from "../types.ts";

/** The SQS source, which also says which wire protocol it speaks. */
export type SqsSource = Source & { readonly protocol: "json" | "query"; readonly fifo: boolean };

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
  /**
   * Says whether a replayed message's `masq_redrive_mac` is the MAC of its `masq_redrive_id` (masq.ts binds
   * it to the HMAC key, so that this module never sees the key). Without it no replay key is trusted.
   */
  verifyRedrive?: RedriveVerifier;
}

const QUERY_SETTINGS = {
  defaultNamespace: "com.amazonaws.sqs",
  xmlNamespace: "http://queue.amazonaws.com/doc/2012-11-05/",
  version: "2012-11-05",
};

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
    ...(opts.endpoint !== undefined && !isAwsHost(new URL(opts.endpoint).hostname) && !hasCredentials
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

/**
 * The size of a message a queue takes, in bytes (the body plus every attribute's name, type and value),
 * when the queue does not say: SQS's limit before it allowed 1 MiB, and what older emulators enforce.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 262_144;

/** The largest message SQS takes in any queue (1 MiB): a dead-letter queue masq creates gets it. */
export const SQS_LARGEST_MESSAGE_BYTES = 1_048_576;

/**
 * A queue's `MaximumMessageSize` attribute as a number of bytes; DEFAULT_MAX_MESSAGE_BYTES when the server
 * did not say or said something that is not a whole number of at least 1,024 (SQS's own minimum).
 * So `maxMessageBytes("1048576")` is 1048576 and `maxMessageBytes(undefined)` is 262144.
 */
export function maxMessageBytes(attribute: string | undefined): number {
  const n = Number(attribute);
  return attribute !== undefined && /^\d{4,10}$/.test(attribute) && Number.isSafeInteger(n) && n >= 1024
    ? n
    : DEFAULT_MAX_MESSAGE_BYTES;
}

/**
 * The body a dead letter carries instead of its redacted body when the two together with its attributes
 * (the encrypted original above all) are more than the dead-letter queue takes: the redacted body is in
 * user_logins_rejected, the original only in the letter.
 */
export const BODY_LEFT_OUT =
  '{"masq":"redacted body left out: the letter was too large for the dead-letter queue with it; it is in user_logins_rejected"}';

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

const SOURCE_ATTRIBUTES = [
  "VisibilityTimeout",
  "ApproximateNumberOfMessages",
  "ApproximateNumberOfMessagesNotVisible",
  "ApproximateNumberOfMessagesDelayed",
  "MessageRetentionPeriod",
] as const;

async function queueAttributes(
  client: SQSClient,
  url: string,
  names: readonly QueueAttributeName[] = SOURCE_ATTRIBUTES,
): Promise<Record<string, string>> {
  const res = await client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: [...names] }));
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
 *   BODY_LEFT_OUT,
 *   DEFAULT_MAX_MESSAGE_BYTES,
 *   isSqsMessageId,
 *   letterBytes,
 *   maxMessageBytes,
 *   type Message,
 *   type MessageKey,
 *   messageKey,
 *   openSqsSource,
 *   type QueueCounts,
 *   RECEIVE_MESSAGE_ATTRIBUTES,
 *   REDRIVE_ID,
 *   REDRIVE_MAC,
 *   type RedriveVerifier,
 *   type Source,
 *   SQS_LARGEST_MESSAGE_BYTES,
 *   type SqsSource,
 *   type SqsSourceOptions,
 *   sqsSource,
 * } from "./sqs.ts";
 * import { silentLogger } from "../log.ts";
 * const queueUrl = "http://localhost:4566/000000000000/login-queue";
 * import { redriveVerifier } from "../lifecycle/redrive.ts";
 * import { createMasker } from "../transform/mask.ts";
 * // A replayed message is keyed `redrive:<letter id>` only when its MAC verifies under masq run's HMAC key.
 * const verifyRedrive: RedriveVerifier = redriveVerifier(createMasker("the HMAC key of masq run, 32 bytes+"));
 * console.log(isSqsMessageId("0b9c6f1e-1d2a-4c7e-9a51-2f8e5b7c3d10")); // true
 * const options: SqsSourceOptions = {
 *   queueUrl, dlqUrl: `${queueUrl}-dlq`, endpoint: "http://localhost:4566", region: "us-east-1",
 *   protocol: "auto", batchSize: 10, waitSeconds: 20, visibilityTimeout: undefined, log: silentLogger,
 *   verifyRedrive,
 * };
 * const source: SqsSource = await openSqsSource(options);
 * const batch: Message[] = await source.receive();
 * const counts: QueueCounts = await source.counts();
 * const letter = { messageId: "m1", body: "{}", attributes: { masq_reason: "bad" } };
 * // Sent whole when it fits the DLQ's MaximumMessageSize, else with BODY_LEFT_OUT as its body, else refused.
 * console.log(letterBytes(letter) <= DEFAULT_MAX_MESSAGE_BYTES, await source.deadLetter(letter), BODY_LEFT_OUT);
 * console.log(maxMessageBytes("1048576") === SQS_LARGEST_MESSAGE_BYTES, RECEIVE_MESSAGE_ATTRIBUTES);
 * const key: MessageKey = messageKey("m-2", { [REDRIVE_ID]: { DataType: "String", StringValue: "x" } }, verifyRedrive);
 * console.log(key, REDRIVE_MAC); // { id: "m-2", ignored: true } ...
 * for (const ten of batchesOfTen(batch)) await source.delete(ten);
 * source.close();
 * // Lower level: a client of one protocol, and the source over it.
 * const client = createSqsClient({ endpoint: "http://localhost:4566", region: "us-east-1" }, "json");
 * const plain: Source = sqsSource(client, { ...options, visibilityTimeout: 30 }, "json");
 * plain.close();
 * const err: unknown = new Error("x");
 * console.log(counts, classify(err), isAbort(err), isMissingQueue(err), isProtocolMismatch(err));
 * ```
 */
export async function openSqsSource(opts: SqsSourceOptions): Promise<SqsSource> {
  const { log } = opts;
  const fifo = isFifoQueue(opts.queueUrl);
  if (isFifoQueue(opts.dlqUrl) !== fifo) {
    throw new ConfigError(
      "--dlq-url / SQS_DLQ_URL",
      `${redactUrl(opts.dlqUrl)}: the dead-letter queue of a ${fifo ? "FIFO" : "standard"} queue must be ${
        fifo ? "a FIFO queue (its name ending in .fifo)" : "a standard queue (its name not ending in .fifo)"
      }, as SQS requires of a redrive policy`,
    );
  }
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
      if (
        opts.protocol === "json" &&
        (answeredXml(err) || (isProtocolMismatch(err) && (status(err) ?? 0) < 500))
      ) {
        throw notJsonError(err);
      }
      throw startupError(err, opts.queueUrl);
    }
  }
  const visibilityTimeout = opts.visibilityTimeout ?? Number(attrs.VisibilityTimeout ?? "30");
  let dlqAttrs: Record<string, string>;
  try {
    dlqAttrs = await queueAttributes(client, opts.dlqUrl, ["MaximumMessageSize"]);
  } catch (err) {
    if (!isMissingQueue(err)) {
      client.destroy();
      throw new ConfigError(
        "--dlq-url / SQS_DLQ_URL",
        `dead-letter queue did not answer: ${errorMessage(err)}`,
      );
    }
    try {
      await createDeadLetterQueue(client, queueNameOf(opts.dlqUrl), attrs.MessageRetentionPeriod, fifo, log);
    } catch (err) {
      client.destroy();
      throw new ConfigError(
        "--dlq-url / SQS_DLQ_URL",
        `${redactUrl(opts.dlqUrl)}: the dead-letter queue does not exist and could not be created: ${
          sdkMessage(err)
        }`,
      );
    }
    log.info("created dead-letter queue", { dlq: redactUrl(opts.dlqUrl) });
    // What the queue was created with (an endpoint may have refused the size asked for).
    dlqAttrs = await queueAttributes(client, opts.dlqUrl, ["MaximumMessageSize"]).catch(() => ({}));
  }
  const maxLetterBytes = maxMessageBytes(dlqAttrs.MaximumMessageSize);
  log.info("connected to SQS", {
    queue: redactUrl(opts.queueUrl),
    dlq: redactUrl(opts.dlqUrl),
    protocol,
    fifo,
    visibility_timeout_s: visibilityTimeout,
    dlq_max_message_bytes: maxLetterBytes,
  });
  return sqsSource(client, { ...opts, visibilityTimeout, maxLetterBytes }, protocol);
}

/**
 * Creates the dead-letter queue with the source queue's retention (a rejected message is kept as long as
 * a good one would be), SQS-managed encryption at rest (it holds redacted bodies and, with a vault key,
 * encrypted originals) and the largest message size (a letter carries a rejected message's original and
 * more). An endpoint that does not know an attribute (older emulators) gets a queue without it, and the
 * log says so.
 */
async function createDeadLetterQueue(
  client: SQSClient,
  name: string,
  retention: string | undefined,
  fifo: boolean,
  log: Logger,
): Promise<void> {
  // A FIFO dead-letter queue is FIFO in every attempt: masq sends each letter with its own deduplication
  // id, so content-based deduplication is left off (two rejected messages may have the same body).
  const kind: Record<string, string> = fifo ? { FifoQueue: "true" } : {};
  const wanted: Record<string, string> = {
    MessageRetentionPeriod: retention ?? "1209600",
    SqsManagedSseEnabled: "true",
    MaximumMessageSize: String(SQS_LARGEST_MESSAGE_BYTES),
  };
  const { SqsManagedSseEnabled: _sse, ...withoutSse } = wanted;
  const tries = [wanted, withoutSse, { MessageRetentionPeriod: wanted.MessageRetentionPeriod }, {}];
  for (const attributes of tries) {
    try {
      await client.send(new CreateQueueCommand({ QueueName: name, Attributes: { ...kind, ...attributes } }));
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
  const why = isMissingQueue(err) ? "queue does not exist" : `queue did not answer: ${sdkMessage(err)}`;
  return new ConfigError("--queue-url / SQS_QUEUE_URL", `${redactUrl(url)}: ${why}`);
}

/**
 * An SDK error's message on one line, without the SDK's advice to inspect `{error}.$response` (which a
 * command-line user cannot) and without a quoted response body.
 */
export function sdkMessage(err: unknown): string {
  return errorMessage(err)
    .replace(/\s*Deserialization error:[^\n]*\$response[^\n]*/i, "")
    .split("\n")[0]
    .slice(0, 300)
    .trim();
}

/** Whether a failed JSON request got an XML answer: the server speaks only the query protocol. */
function answeredXml(err: unknown): boolean {
  return /Unexpected token '<'|<\?xml|<ErrorResponse|is not valid JSON/i.test(errorMessage(err));
}

/**
 * The start-up error of `--sqs-protocol json` against a server that does not speak it: one line, naming
 * the setting and the way out. So an SDK error saying `Unexpected token '<', "<?xml vers"... is not valid
 * JSON` becomes `--sqs-protocol / MASQ_SQS_PROTOCOL: json was asked for, but the SQS endpoint answered in
 * the query (XML) protocol; use --sqs-protocol query, or auto ...`.
 */
export function notJsonError(err: unknown): ConfigError {
  return new ConfigError(
    "--sqs-protocol / MASQ_SQS_PROTOCOL",
    `json was asked for, but the SQS endpoint ${
      answeredXml(err)
        ? "answered in the query (XML) protocol"
        : `refused the JSON protocol (${sdkMessage(err)})`
    }; use --sqs-protocol query, or auto to choose by the endpoint's answer`,
  );
}

/**
 * How long a dead letter waits for others to share its SendMessageBatch, ms: fewer requests for the same
 * letters (see bench/BENCHMARKS.md). Only batches holding a rejection wait.
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
/**
 * The attribute `masq redrive` puts beside it: the HMAC key's token of that id under the domain
 * `redrive` (64 hex), which no producer can make without the key.
 */
export const REDRIVE_MAC = "masq_redrive_mac";
/**
 * The message attributes masq asks for over the JSON protocol, and nothing else (each one returned is
 * parsed for every message). The bench's bare loop asks for the same.
 */
export const RECEIVE_MESSAGE_ATTRIBUTES: readonly string[] = [REDRIVE_ID, REDRIVE_MAC];

/** Says whether `mac` is the MAC of the dead letter id `letterId` (see SqsSourceOptions.verifyRedrive). */
export type RedriveVerifier = (letterId: string, mac: string) => boolean;

/** An SQS message id as SQS and the emulators masq is tested against make them: a UUID. */
const SQS_MESSAGE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAC = /^[0-9a-f]{64}$/;

/** Whether `text` has the shape of an SQS message id (a UUID). */
export function isSqsMessageId(text: string): boolean {
  return SQS_MESSAGE_ID.test(text);
}

/** The id masq keys a message by, and whether it carried replay attributes that were not trusted. */
export interface MessageKey {
  id: string;
  /** The message carried `masq_redrive_id` or `masq_redrive_mac` and they were ignored. */
  ignored: boolean;
}

/**
 * The id masq keys a message by (its ledger entry, its rejection, its dead letter, its logs): the SQS
 * message id, or for a message `masq redrive` replayed, `redrive:` and the dead letter's id, which every
 * replay of one letter shares (a redrive that crashed between its send and its delete sends the letter
 * again under a new SQS message id). The replay key is taken only when the dead letter's id is shaped like
 * an SQS message id and `verify` accepts its MAC: a producer cannot forge one (to make its messages
 * duplicates of each other, or to put its own text into the ledger). Anything else keys the message by
 * its SQS message id, with `ignored` set when replay attributes were there.
 * So with no attributes, `messageKey("m-2", undefined, verify)` is `{ id: "m-2", ignored: false }`.
 */
export function messageKey(
  sqsMessageId: string,
  attributes: Record<string, MessageAttributeValue> | undefined,
  verify: RedriveVerifier | undefined,
): MessageKey {
  const idAttribute = attributes?.[REDRIVE_ID];
  const macAttribute = attributes?.[REDRIVE_MAC];
  if (idAttribute === undefined && macAttribute === undefined) return { id: sqsMessageId, ignored: false };
  const letterId = idAttribute?.DataType === "String" ? idAttribute.StringValue : undefined;
  const mac = macAttribute?.DataType === "String" ? macAttribute.StringValue : undefined;
  if (
    verify !== undefined && letterId !== undefined && mac !== undefined && SQS_MESSAGE_ID.test(letterId) &&
    MAC.test(mac) && verify(letterId, mac)
  ) {
    return { id: `redrive:${letterId}`, ignored: false };
  }
  return { id: sqsMessageId, ignored: true };
}

/** A SentTimestamp attribute as epoch ms; now when it is missing or not a plausible time. */
function sentAt(attribute: string | undefined): number {
  const n = Number(attribute);
  return attribute !== undefined && Number.isSafeInteger(n) && n > 0 ? n : Date.now();
}

/** The source over an already configured client (openSqsSource() builds the client and checks the queues). */
export function sqsSource(
  client: SQSClient,
  opts: Omit<SqsSourceOptions, "visibilityTimeout"> & {
    visibilityTimeout: number;
    /** The dead-letter queue's MaximumMessageSize (default DEFAULT_MAX_MESSAGE_BYTES). */
    maxLetterBytes?: number;
  },
  protocol: "json" | "query",
): SqsSource {
  const { log } = opts;
  const maxLetterBytes = opts.maxLetterBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const fifo = isFifoQueue(opts.queueUrl);

  /**
   * A FIFO dead-letter queue wants each letter's group (the rejected message's) and a deduplication id:
   * the masq message id's, so that a letter sent again (a crash between its send and its commit) within
   * SQS's five-minute window is stored once.
   */
  const fifoFields = (letter: DeadLetter) =>
    fifo
      ? {
        MessageGroupId: letter.groupId ?? FALLBACK_GROUP_ID,
        MessageDeduplicationId: deduplicationId("dead-letter", letter.messageId),
      }
      : {};

  /** One letter in a SendMessage of its own: the way back when a batch as a whole is refused. */
  async function sendOne(letter: DeadLetter): Promise<DeadLetterOutcome> {
    try {
      await client.send(
        new SendMessageCommand({
          QueueUrl: opts.dlqUrl,
          MessageBody: letter.body,
          MessageAttributes: messageAttributes(letter),
          ...fifoFields(letter),
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

  // A FIFO queue's letters go one at a time, in the order the pipeline sends them (SendMessageBatch
  // entries of one group keep their order, but a failed entry retried after the others would not).
  const sendLetter = fifo ? sendOne : createLetterBatcher({
    sendBatch,
    bytes: letterBytes,
    // A request may carry no more than one message may (SQS's rule for SendMessageBatch).
    maxBatchBytes: maxLetterBytes,
    lingerMs: DEAD_LETTER_LINGER_MS,
    clock: systemClock,
  });

  return {
    queueUrl: opts.queueUrl,
    visibilityTimeout: opts.visibilityTimeout,
    protocol,
    fifo,
    classify,
    async receive(signal) {
      const res = await client.send(
        new ReceiveMessageCommand({
          QueueUrl: opts.queueUrl,
          MaxNumberOfMessages: opts.batchSize,
          WaitTimeSeconds: opts.waitSeconds,
          VisibilityTimeout: opts.visibilityTimeout,
          MessageSystemAttributeNames: fifo
            ? ["SentTimestamp", "ApproximateReceiveCount", "MessageGroupId"]
            : ["SentTimestamp", "ApproximateReceiveCount"],
          // The query protocol of older emulators knows only the legacy name; JSON speakers are asked for
          // the two attributes read, not all (each one returned is parsed for every message). The replay
          // attributes are asked for over JSON only: sqslite, a query-only emulator, fails any receive that
          // names a message attribute its messages lack.
          ...(protocol === "query"
            ? { AttributeNames: ["All" as const] }
            : { MessageAttributeNames: [...RECEIVE_MESSAGE_ATTRIBUTES] }),
        }),
        signal ? { abortSignal: signal } : {},
      );
      return (res.Messages ?? []).map((m) => {
        const sqsId = m.MessageId ?? "";
        const key = messageKey(sqsId, m.MessageAttributes, opts.verifyRedrive);
        if (key.ignored) {
          // Names the SQS message id only: the attributes' values are the producer's.
          log.warn("replay attributes (masq_redrive_id, masq_redrive_mac) do not verify; ignored", {
            message_id: sqsId,
          });
        }
        return {
          id: key.id,
          receiptHandle: m.ReceiptHandle ?? "",
          body: m.Body ?? "",
          sentTimestamp: sentAt(m.Attributes?.SentTimestamp),
          receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 1),
          ...(fifo ? { groupId: m.Attributes?.MessageGroupId ?? FALLBACK_GROUP_ID } : {}),
        };
      });
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
    async deadLetter(letter): Promise<DeadLetterOutcome> {
      // Every dead letter's body is ASCII JSON (a redacted body, redactBody() writes it so, or a fixed
      // note): nothing in it is a character SQS refuses.
      // Sizes are checked here, not left to SQS: an emulator may accept what SQS refuses, and SQS may answer
      // a too-large message with an error that looks like any other client error.
      if (letterBytes(letter) <= maxLetterBytes) {
        const outcome = await sendLetter(letter);
        if (outcome.status === "sent") return outcome;
      }
      // Too large, or refused (the count of an endpoint may differ from ours): the same letter without its
      // redacted body (kept in user_logins_rejected), so that an encrypted original that fits is not lost.
      const slim = { ...letter, body: BODY_LEFT_OUT };
      if (letterBytes(slim) > maxLetterBytes) {
        return { status: "refused", why: "too large for the dead-letter queue" };
      }
      return await sendLetter(slim);
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
