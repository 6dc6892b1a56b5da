/** lib/source/queue_name.ts; FIFO queues against real servers: tests/integration/fifo_test.ts. */
import { assertEquals, assertMatch } from "../support/assert.ts";
import {
  deduplicationId,
  defaultDlqUrl,
  isFifoQueue,
  queueNameOf,
  queueNameProblem,
} from "../../lib/source/queue_name.ts";

Deno.test("defaultDlqUrl() puts -dlq before .fifo for a FIFO queue, after the name otherwise", () => {
  assertEquals(defaultDlqUrl("http://h:1/0/login-queue.fifo"), "http://h:1/0/login-queue-dlq.fifo");
  assertEquals(defaultDlqUrl("http://h:1/0/login-queue.fifo/"), "http://h:1/0/login-queue-dlq.fifo");
  assertEquals(defaultDlqUrl("http://h:1/0/login-queue"), "http://h:1/0/login-queue-dlq");
  assertEquals(queueNameProblem(queueNameOf(defaultDlqUrl("http://h:1/0/q.fifo"))), undefined);
});

Deno.test("isFifoQueue() is true for a name ending in .fifo only", () => {
  assertEquals(isFifoQueue("https://sqs.eu-west-1.amazonaws.com/1/login-queue.fifo"), true);
  assertEquals(isFifoQueue("https://sqs.eu-west-1.amazonaws.com/1/login-queue"), false);
  assertEquals(isFifoQueue("https://sqs.eu-west-1.amazonaws.com/1/fifo"), false);
});

Deno.test("queueNameProblem() refuses what SQS refuses: other characters, a dot not in .fifo, over 80", () => {
  assertEquals(queueNameProblem("login-queue_1"), undefined);
  assertEquals(queueNameProblem("login-queue.fifo"), undefined);
  assertMatch(queueNameProblem("login-queue.fifo-dlq")!, /only letters, digits, hyphens and underscores/);
  assertMatch(queueNameProblem("a.b")!, /only letters/);
  assertMatch(queueNameProblem(".fifo")!, /only letters/);
  assertEquals(queueNameProblem("q".repeat(80)), undefined);
  assertMatch(queueNameProblem("q".repeat(81))!, /81 characters long; SQS allows at most 80/);
  assertMatch(queueNameProblem(`${"q".repeat(76)}.fifo`)!, /81 characters/);
});

Deno.test("deduplicationId() is 64 hex, the same for the same send, different across domains and keys", () => {
  assertMatch(deduplicationId("dead-letter", "m1"), /^[0-9a-f]{64}$/);
  assertEquals(deduplicationId("dead-letter", "m1"), deduplicationId("dead-letter", "m1"));
  assertEquals(deduplicationId("dead-letter", "m1") === deduplicationId("redrive", "m1"), false);
  assertEquals(deduplicationId("dead-letter", "m1") === deduplicationId("dead-letter", "m2"), false);
});
