import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { assertEquals } from "../assert.ts";
import {
  classify,
  entryFailure,
  letterBytes,
  MAX_MESSAGE_BYTES,
  messageKey,
  openSqsSource,
  sqsSafeJson,
} from "../../lib/source/sqs.ts";
import { silentLogger } from "../../lib/log.ts";
import { receiveAll, sqsClient, startEmbeddedSqs } from "../integration/harness.ts";
import { sqsError } from "../fakes.ts";

Deno.test("classify() of the source: transient for outages, data for refused contents, fatal for bugs and the rest", () => {
  assertEquals(classify(sqsError("ServiceUnavailable", 503)), "transient");
  assertEquals(classify(sqsError("RequestThrottled", 400)), "transient");
  assertEquals(
    classify(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })),
    "transient",
  );
  assertEquals(classify(sqsError("InvalidMessageContents", 400)), "data");
  assertEquals(classify(sqsError("InvalidParameterValue", 400)), "data");
  assertEquals(classify(sqsError("AccessDenied", 403)), "fatal");
  assertEquals(classify(sqsError("QueueDoesNotExist", 400)), "fatal");
  assertEquals(classify(Object.assign(new Error("aborted"), { name: "AbortError" })), "fatal");
  // A bug is never retried, not even one the SDK threw without an HTTP status.
  assertEquals(classify(new TypeError("Cannot read properties of undefined")), "fatal");
  assertEquals(classify(new RangeError("Invalid array length")), "fatal");
  assertEquals(classify("503"), "fatal");
});

Deno.test("sqsSafeJson() escapes what SQS cannot carry and keeps the JSON value", () => {
  const json = JSON.stringify({ a: "x\uffff\ufffe\u{1F600}é\u0085", b: "\ud800" });
  const safe = sqsSafeJson(json);
  assertEquals(JSON.parse(safe), JSON.parse(json));
  assertEquals(/[\ufffe\uffff]/.test(safe), false);
  assertEquals(/[\ud800-\udfff]/.test(safe), false, "astral characters as escaped surrogate pairs");
  assertEquals(sqsSafeJson('{"ok":"plain"}'), '{"ok":"plain"}');
});

Deno.test("letterBytes() counts the body and each attribute's name, type and value in UTF-8", () => {
  assertEquals(letterBytes({ messageId: "m", body: "é", attributes: { ab: "xyz" } }), 2 + 2 + 6 + 3);
});

/** The SQS source over the JSON protocol at its test settings. */
function openJsonSource(endpoint: string, queueUrl: string, dlqUrl: string) {
  return openSqsSource({
    queueUrl,
    dlqUrl,
    endpoint,
    region: "us-east-1",
    protocol: "json",
    batchSize: 10,
    waitSeconds: 0,
    visibilityTimeout: undefined,
    log: silentLogger,
  });
}

Deno.test("openSqsSource() creates a missing dead-letter queue with the source's retention and SSE; deadLetter() sends the letter or refuses one too large", async () => {
  const sqs = await startEmbeddedSqs();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue", { MessageRetentionPeriod: "345600" });
    const dlqUrl = `${queueUrl}-dlq`;
    const source = await openJsonSource(sqs.endpoint, queueUrl, dlqUrl);
    try {
      const attrs = await client.send(
        new GetQueueAttributesCommand({
          QueueUrl: dlqUrl,
          AttributeNames: ["MessageRetentionPeriod", "SqsManagedSseEnabled"],
        }),
      );
      assertEquals(attrs.Attributes?.MessageRetentionPeriod, "345600");
      assertEquals(attrs.Attributes?.SqsManagedSseEnabled, "true");

      const letter = {
        messageId: "m1",
        body: '{"user_id":"u"}',
        attributes: { masq_reason: "app_version is not a version", masq_message_id: "m1" },
      };
      assertEquals(await source.deadLetter(letter), { status: "sent" });
      const [sent] = await receiveAll(client, dlqUrl);
      assertEquals(sent.Body, letter.body);
      assertEquals(sent.MessageAttributes?.masq_reason?.StringValue, "app_version is not a version");

      const big = { ...letter, body: "x".repeat(MAX_MESSAGE_BYTES - 60) };
      assertEquals(await source.deadLetter(big), {
        status: "refused",
        why: "too large for the dead-letter queue",
      });
      assertEquals((await receiveAll(client, dlqUrl)).length, 0);
    } finally {
      source.close();
    }
  } finally {
    client.destroy();
    await sqs.stop();
  }
});

Deno.test("entryFailure() treats a batch entry as a single send's answer: refused contents, fatal sender faults, transient queue faults", () => {
  assertEquals(entryFailure("InvalidMessageContents", "Invalid characters found.", true), {
    status: "refused",
    why: "refused by the dead-letter queue (InvalidMessageContents)",
  });
  const denied = entryFailure("AccessDenied", "no", true);
  assertEquals(denied.status, "failed");
  if (denied.status === "failed") assertEquals(classify(denied.error), "fatal");
  const internal = entryFailure("InternalError", "try again", false);
  assertEquals(internal.status, "failed");
  if (internal.status === "failed") assertEquals(classify(internal.error), "transient");
});

Deno.test("deadLetter() of the SQS source: letters sent together arrive whole, each with its attributes", async () => {
  const sqs = await startEmbeddedSqs();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue");
    const dlqUrl = sqs.createQueue("login-queue-dlq");
    const source = await openJsonSource(sqs.endpoint, queueUrl, dlqUrl);
    try {
      // Twelve at once: a batch of ten, then two more; one body with a character SQS cannot carry.
      const letters = Array.from({ length: 12 }, (_, i) => ({
        messageId: `m${i}`,
        body: i === 3 ? '{"note":"\uffff"}' : `{"n":${i}}`,
        attributes: { masq_reason: `reason ${i}`, masq_message_id: `m${i}` },
      }));
      const outcomes = await Promise.all(letters.map((l) => source.deadLetter(l)));
      assertEquals(outcomes, letters.map(() => ({ status: "sent" })));
      const got = await receiveAll(client, dlqUrl);
      const byId = new Map(got.map((m) => [m.MessageAttributes?.masq_message_id?.StringValue, m]));
      assertEquals(byId.size, 12);
      for (const [i, l] of letters.entries()) {
        const m = byId.get(`m${i}`)!;
        assertEquals(m.MessageAttributes?.masq_reason?.StringValue, `reason ${i}`);
        assertEquals(JSON.parse(m.Body!), JSON.parse(l.body));
      }
    } finally {
      source.close();
    }
  } finally {
    client.destroy();
    await sqs.stop();
  }
});

Deno.test("messageKey() keys a replayed message by its dead letter's id, anything else by its SQS message id", () => {
  assertEquals(messageKey("m-2", undefined), "m-2");
  assertEquals(
    messageKey("m-2", "0b9c6f1e-1d2a-4c7e-9a51-2f8e5b7c3d10"),
    "redrive:0b9c6f1e-1d2a-4c7e-9a51-2f8e5b7c3d10",
  );
  // A value that is not an SQS message id (a producer's own attribute of that name) is not trusted.
  assertEquals(messageKey("m-2", ""), "m-2");
  assertEquals(messageKey("m-2", "x y"), "m-2");
  assertEquals(messageKey("m-2", "z".repeat(101)), "m-2");
});
