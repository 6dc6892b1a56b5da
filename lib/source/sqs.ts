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
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { AwsQueryProtocol } from "@aws-sdk/core/protocols";
import { ConfigError, errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { SqsProtocol } from "../config.ts";

/** One received message. */
export interface Message {
  id: string;
  receiptHandle: string;
  body: string;
  /** When SQS accepted the message, epoch milliseconds. */
  sentTimestamp: number;
  receiveCount: number;
}

export interface QueueCounts {
  visible: number;
  inFlight: number;
  delayed: number;
}

export interface Source {
  /** The visibility timeout in force, seconds. */
  readonly visibilityTimeout: number;
  readonly protocol: "json" | "query";
  receive(signal?: AbortSignal): Promise<Message[]>;
  /** Deletes messages; per-entry failures (e.g. a receipt handle that expired) are logged, not thrown. */
  delete(messages: readonly Message[]): Promise<void>;
  /** Keeps messages invisible for another `visibilityTimeout` seconds. */
  extendVisibility(messages: readonly Message[]): Promise<void>;
  /** Sends the original body to the dead-letter queue with the reason and message id as attributes. */
  forwardToDeadLetter(message: Message, reason: string): Promise<void>;
  counts(): Promise<QueueCounts>;
  close(): void;
}

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
 *
 * @example
 * ```ts
 * const client = createSqsClient({ endpoint: "http://localhost:4566", region: "us-east-1" }, "query");
 * ```
 */
export function createSqsClient(
  opts: { endpoint: string | undefined; region: string; env?: (name: string) => string | undefined },
  protocol: "json" | "query",
): SQSClient {
  const env = opts.env ?? (() => undefined);
  const hasCredentials = env("AWS_ACCESS_KEY_ID") !== undefined || env("AWS_PROFILE") !== undefined;
  return new SQSClient({
    region: opts.region,
    ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
    ...(!isAwsEndpoint(opts.endpoint) && !hasCredentials
      ? { credentials: { accessKeyId: "test", secretAccessKey: "test" } }
      : {}),
    // The pipeline retries with its own logged, capped backoff; the SDK adds one quick retry.
    maxAttempts: 2,
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
 * True for SQS errors an outage produces: no response at all (refused, reset, timed out), 5xx, or
 * throttling. Client errors (missing queue, bad parameters, access denied) are not retried.
 */
export function isTransientSqsError(err: unknown): boolean {
  if (isAbort(err)) return false;
  const code = status(err);
  if (code === undefined) return true;
  if (code >= 500 || code === 429) return true;
  return /Throttl|RequestLimitExceeded|ServiceUnavailable|InternalError/i.test(errName(err));
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
 * const source = await openSqsSource({ queueUrl, dlqUrl, endpoint, region: "us-east-1", protocol: "auto",
 *   batchSize: 10, waitSeconds: 20, visibilityTimeout: undefined, log });
 * const batch = await source.receive();
 * ```
 */
export async function openSqsSource(opts: SqsSourceOptions): Promise<Source> {
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
    await client.send(new CreateQueueCommand({ QueueName: queueName(opts.dlqUrl) }));
    log.info("created dead-letter queue", { dlq: opts.dlqUrl });
  }
  log.info("connected to SQS", { queue: opts.queueUrl, protocol, visibility_timeout_s: visibilityTimeout });
  return sqsSource(client, { ...opts, visibilityTimeout }, protocol);
}

function startupError(err: unknown, url: string): ConfigError {
  const why = isMissingQueue(err) ? "queue does not exist" : `queue did not answer: ${errorMessage(err)}`;
  return new ConfigError("--queue-url / SQS_QUEUE_URL", `${url}: ${why}`);
}

/** The source over an already configured client (tests inject their own). */
export function sqsSource(
  client: SQSClient,
  opts: Omit<SqsSourceOptions, "visibilityTimeout"> & { visibilityTimeout: number },
  protocol: "json" | "query",
): Source {
  const { log } = opts;
  return {
    visibilityTimeout: opts.visibilityTimeout,
    protocol,
    async receive(signal) {
      const res = await client.send(
        new ReceiveMessageCommand({
          QueueUrl: opts.queueUrl,
          MaxNumberOfMessages: opts.batchSize,
          WaitTimeSeconds: opts.waitSeconds,
          VisibilityTimeout: opts.visibilityTimeout,
          MessageSystemAttributeNames: ["SentTimestamp", "ApproximateReceiveCount"],
          // The query protocol of older emulators knows only the legacy name.
          AttributeNames: ["All"],
        }),
        signal ? { abortSignal: signal } : {},
      );
      return (res.Messages ?? []).map((m) => ({
        id: m.MessageId ?? "",
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
    async forwardToDeadLetter(message, reason) {
      await client.send(
        new SendMessageCommand({
          QueueUrl: opts.dlqUrl,
          MessageBody: message.body,
          MessageAttributes: {
            masq_reason: { DataType: "String", StringValue: xmlSafe(reason.slice(0, 1024)) },
            masq_message_id: { DataType: "String", StringValue: message.id },
            masq_source_queue: { DataType: "String", StringValue: opts.queueUrl },
          },
        }),
      );
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
