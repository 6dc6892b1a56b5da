/**
 * SQS queue names and what they imply: a FIFO queue's name ends in `.fifo` (SQS's rule, the only way to
 * tell before asking), the dead-letter queue masq defaults to for a queue, and the id SQS's FIFO queues
 * deduplicate a send by.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

const FIFO_SUFFIX = ".fifo";

/** The last path segment of a queue URL: its name. */
export function queueNameOf(url: string): string {
  const parts = new URL(url).pathname.split("/").filter(Boolean);
  return parts[parts.length - 1] ?? "";
}

/** Whether a queue URL names a FIFO queue. So `isFifoQueue(".../login-queue.fifo")` is true. */
export function isFifoQueue(url: string): boolean {
  return queueNameOf(url).endsWith(FIFO_SUFFIX);
}

/**
 * The dead-letter queue masq uses for a queue unless told: `<name>-dlq`, and for a FIFO queue
 * `<name>-dlq.fifo` (a FIFO queue's dead-letter queue must itself be FIFO, and `.fifo` must end the name).
 * So `defaultDlqUrl("http://h/0/login-queue.fifo")` is `"http://h/0/login-queue-dlq.fifo"`.
 */
export function defaultDlqUrl(queueUrl: string): string {
  const url = queueUrl.replace(/\/+$/, "");
  return url.endsWith(FIFO_SUFFIX) ? `${url.slice(0, -FIFO_SUFFIX.length)}-dlq${FIFO_SUFFIX}` : `${url}-dlq`;
}

/**
 * Why SQS would refuse `name` as a queue name (1 to 80 letters, digits, `-` and `_`, a FIFO queue's
 * ending in `.fifo` within the 80), or undefined when it would not.
 */
export function queueNameProblem(name: string): string | undefined {
  const base = name.endsWith(FIFO_SUFFIX) ? name.slice(0, -FIFO_SUFFIX.length) : name;
  if (name.length > 80) return `queue name is ${name.length} characters long; SQS allows at most 80`;
  if (!/^[A-Za-z0-9_-]+$/.test(base)) {
    return "queue name may hold only letters, digits, hyphens and underscores (and end in .fifo for a FIFO queue)";
  }
  return undefined;
}

/**
 * The MessageDeduplicationId of a send to a FIFO queue: SHA-256 (hex) of what identifies the send, so that
 * the same send repeated (a retry, a rerun after a crash) within SQS's five-minute window is stored once,
 * and nothing a producer chose reaches the id's 128-character limit or its character set.
 */
export function deduplicationId(domain: string, key: string): string {
  return bytesToHex(sha256(new TextEncoder().encode(`${domain}\0${key}`)));
}

/** The message group a replay or a dead letter goes to when the message it comes from had none. */
export const FALLBACK_GROUP_ID = "masq";
