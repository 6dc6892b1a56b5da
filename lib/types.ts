/**
 * The types shared along source -> transform -> sink, in one place so that no stage imports another's
 * module for its types. Each stage's module implements one side of these contracts; the pipeline only
 * sees these interfaces, so it can be tested against in-memory fakes.
 *
 * @module
 */

/** One received SQS message. */
export interface Message {
  id: string;
  receiptHandle: string;
  body: string;
  /** When SQS accepted the message, epoch milliseconds. */
  sentTimestamp: number;
  receiveCount: number;
  /** The message's MessageGroupId, on a FIFO queue. */
  groupId?: string;
}

/** Approximate message counts of a queue. */
export interface QueueCounts {
  visible: number;
  inFlight: number;
  delayed: number;
}

/**
 * A rejected message as it is sent to the dead-letter queue: the redacted body (never the raw one) and
 * string attributes (`masq_reason`, `masq_message_id`, `masq_source_queue`, `masq_sent_timestamp`, and,
 * when a vault key is configured, `masq_original` (base64 AES-256-GCM ciphertext) with `masq_key_id`).
 */
export interface DeadLetter {
  messageId: string;
  body: string;
  attributes: Record<string, string>;
  /** The rejected message's MessageGroupId (a FIFO queue's): the letter goes to the same group. */
  groupId?: string;
}

/**
 * What became of a dead-letter send that did not throw: `sent`, or `refused` for a permanent reason
 * (the message is too large for the queue, say) that no retry can fix. Transient failures throw.
 */
export type DeadLetterOutcome = { status: "sent" } | { status: "refused"; why: string };

/**
 * How a failed call is to be handled, decided by the module that made it (one rule per module):
 * `transient` (an outage: retry with backoff), `data` (this input can never succeed: isolate and reject
 * it, retry nothing), `fatal` (a bug or a misconfiguration: stop the run). A TypeError or RangeError is
 * always `fatal`: retrying a bug would only hide it.
 */
export type ErrorClass = "transient" | "data" | "fatal";

/** The queue side of the pipeline. */
export interface Source {
  /** The URL of the queue messages come from (a dead letter names it). */
  readonly queueUrl: string;
  /** The visibility timeout in force, seconds. */
  readonly visibilityTimeout: number;
  /**
   * True for a FIFO queue: the pipeline then dead-letters a batch's rejections one after another, in
   * message order, so that the dead-letter queue keeps each group's order.
   */
  readonly fifo?: boolean;
  receive(signal?: AbortSignal): Promise<Message[]>;
  /** Keeps messages invisible for another `visibilityTimeout` seconds. */
  extendVisibility(messages: readonly Message[]): Promise<void>;
  /** Deletes messages; per-entry failures (an expired receipt handle, say) are logged, not thrown. */
  delete(messages: readonly Message[]): Promise<void>;
  /**
   * Sends a letter to the dead-letter queue. Resolves `refused` when the queue can never take it (too
   * large, invalid); throws for anything else (classified by `classify`).
   */
  deadLetter(letter: DeadLetter): Promise<DeadLetterOutcome>;
  counts(): Promise<QueueCounts>;
  /** The one rule for this source's errors. */
  classify(err: unknown): ErrorClass;
  close(): void;
}

/** One encrypted original for the vault: stored once per (field, token). */
export interface VaultEntry {
  field: "ip" | "device_id";
  token: string;
  /** 12-byte IV followed by the AES-256-GCM ciphertext and tag, or a sealed entry (lib/seal.ts). */
  ciphertext: Uint8Array;
  keyId: string;
  /** Who a sealed entry is sealed to (`s:<subject key id>`, `o:<officer key id>`); "" under the old vault key. */
  subjectKeyId?: string;
}

/** One valid login, masked, ready to store. */
export interface LoginRecord {
  kind: "login";
  messageId: string;
  userId: string;
  deviceType: string | null;
  maskedIp: string | null;
  maskedDeviceId: string | null;
  locale: string | null;
  appVersion: number | null;
  /** UTC date, "YYYY-MM-DD". */
  createDate: string;
  /** Encrypted originals of this row's personal values, when a vault key is configured. */
  vault?: VaultEntry[];
}

/** One rejected message, as recorded in `user_logins_rejected`. */
export interface RejectionRecord {
  kind: "rejection";
  messageId: string;
  /** Names the field and the problem, never the value. */
  reason: string;
  /** The body as JSON with every non-allow-listed value replaced; null when the body was not JSON. */
  bodyRedacted: string | null;
}

export type SinkRecord = LoginRecord | RejectionRecord;

export interface WriteResult {
  /** New rows in user_logins. */
  inserted: number;
  /** New rows in user_logins_rejected. */
  rejected: number;
  /** Records whose message id was already written (by an earlier delivery). */
  duplicates: number;
}

/** The database side of the pipeline. */
export interface Sink {
  /** Which of these message ids the ledger already holds (committed earlier). */
  written(messageIds: readonly string[]): Promise<Set<string>>;
  /**
   * Writes several batches atomically in one statement and returns each batch's own result, in order:
   * message ids already in the ledger are skipped and counted as duplicates (so is a record whose id an
   * earlier batch of the same call holds, as that later batch's duplicate).
   */
  writeBatches(batches: readonly (readonly SinkRecord[])[]): Promise<WriteResult[]>;
  /** The one rule for this sink's errors: `data` for a row the database refuses. */
  classify(err: unknown): ErrorClass;
  close(): Promise<void>;
}

/**
 * message -> record, as the pipeline sees it (masq.ts binds the masker and the vault cipher). Either may
 * be synchronous.
 */
export interface Transform {
  /** A valid login's row, or the message's rejection. */
  record(message: Message): SinkRecord | Promise<SinkRecord>;
  /** The rejection of a message whose row the database refused, with that reason. */
  rejection(message: Message, reason: string): RejectionRecord | Promise<RejectionRecord>;
}

/** Pseudonymisation with one key: deterministic, keyed, domain-separated tokens. */
export interface Masker {
  /** Names the key in use (`PII_HMAC_KEY_ID`, default "k1"). */
  readonly keyId: string;
  /** Token of an IP address (canonicalised first). */
  ip(value: string): string;
  /** Token of a device id (trimmed first). */
  deviceId(value: string): string;
  /** Token of any text under a domain (a redacted body's path, say). */
  token(domain: string, text: string): string;
}

/** The JSON summary printed as the last line of stdout. */
export interface Summary {
  received: number;
  inserted: number;
  duplicates: number;
  rejected: number;
  seconds: number;
  rate: number;
}

/**
 * Named internal events of a run: metrics, progress and logs subscribe to these instead of being woven
 * into the pipeline.
 */
export type PipelineEvent =
  /** `oldestSentAt`: the SentTimestamp (epoch ms) of the batch's oldest message (the queue-age metric). */
  | { type: "received"; messages: number; oldestSentAt?: number }
  | { type: "written"; rows: number; inserted: number; duplicates: number; rejected: number; ms: number }
  | { type: "deleted"; messages: number; latenciesMs: readonly number[] }
  | { type: "dead_lettered"; messages: number }
  | { type: "retry"; what: string; kind: "sqs" | "database" }
  | { type: "in_flight"; messages: number }
  | { type: "queue_counts"; counts: QueueCounts }
  | { type: "database_ok" }
  | { type: "queue_ok" };
