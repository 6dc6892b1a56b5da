/**
 * lib/source/sqs.ts against the SQS emulator (fauxqs, in-process, over the real AWS SDK): the dead-letter
 * queue it creates, letters sized by it and sent in batches, URLs without credentials, the replay
 * attributes of a receive. Its pure tests are in tests/source/sqs_test.ts.
 */
import { GetQueueAttributesCommand, SendMessageCommand } from "@aws-sdk/client-sqs";
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import {
  BODY_LEFT_OUT,
  openSqsSource,
  RECEIVE_MESSAGE_ATTRIBUTES,
  type RedriveVerifier,
  SQS_LARGEST_MESSAGE_BYTES,
  sqsSource,
} from "../../lib/source/sqs.ts";
import { ConfigError } from "../../lib/errors.ts";
import { type Fields, type Logger, silentLogger } from "../../lib/log.ts";
import { receiveAll, sqsClient } from "../support/sqs.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import { GOOD_MAC, LETTER_ID, stringAttribute, verifyReplay } from "../support/fakes.ts";

/** The SQS source over the JSON protocol at its test settings. */
function openJsonSource(
  endpoint: string,
  queueUrl: string,
  dlqUrl: string,
  more: { log?: Logger; verifyRedrive?: RedriveVerifier } = {},
) {
  return openSqsSource({
    queueUrl,
    dlqUrl,
    endpoint,
    region: "us-east-1",
    protocol: "json",
    batchSize: 10,
    waitSeconds: 0,
    visibilityTimeout: undefined,
    log: more.log ?? silentLogger,
    ...(more.verifyRedrive ? { verifyRedrive: more.verifyRedrive } : {}),
  });
}

function recorder() {
  const lines: Array<{ level: string; msg: string; fields: Fields }> = [];
  const at = (level: string) => (msg: string, fields: Fields = {}) => void lines.push({ level, msg, fields });
  const log: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  return { lines, log };
}

Deno.test("openSqsSource() creates a missing dead-letter queue with the source's retention, SSE and the largest message size", async () => {
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
          AttributeNames: ["MessageRetentionPeriod", "SqsManagedSseEnabled", "MaximumMessageSize"],
        }),
      );
      assertEquals(attrs.Attributes?.MessageRetentionPeriod, "345600");
      assertEquals(attrs.Attributes?.SqsManagedSseEnabled, "true");
      assertEquals(attrs.Attributes?.MaximumMessageSize, String(SQS_LARGEST_MESSAGE_BYTES));

      const letter = {
        messageId: "m1",
        body: '{"user_id":"u"}',
        attributes: { masq_reason: "app_version is not a version", masq_message_id: "m1" },
      };
      assertEquals(await source.deadLetter(letter), { status: "sent" });
      const [sent] = await receiveAll(client, dlqUrl);
      assertEquals(sent.Body, letter.body);
      assertEquals(sent.MessageAttributes?.masq_reason?.StringValue, "app_version is not a version");
    } finally {
      source.close();
    }
  } finally {
    client.destroy();
    await sqs.stop();
  }
});

Deno.test("deadLetter() of the SQS source sizes letters by the DLQ's MaximumMessageSize: whole when they fit, else without the body, else refused", async () => {
  const sqs = await startEmbeddedSqs();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue");
    const bigDlq = sqs.createQueue("big-dlq", { MaximumMessageSize: "1048576" });
    const smallDlq = sqs.createQueue("small-dlq", { MaximumMessageSize: "262144" });
    const letter = (id: string, body: number, original: number) => ({
      messageId: id,
      body: JSON.stringify({ note: "b".repeat(body) }),
      attributes: { masq_message_id: id, masq_original: "o".repeat(original) },
    });

    const big = await openJsonSource(sqs.endpoint, queueUrl, bigDlq);
    try {
      // Over the old fixed limit of 256 KiB, within the queue's own: sent as it is, batched together.
      const letters = [
        letter("a", 100_000, 500_000),
        letter("b", 200_000, 200_000),
        letter("c", 10, 900_000),
      ];
      assertEquals(
        await Promise.all(letters.map((l) => big.deadLetter(l))),
        letters.map(() => ({ status: "sent" })),
      );
      // With its body, more than the queue takes; without it, not.
      assertEquals(await big.deadLetter(letter("d", 500_000, 600_000)), { status: "sent" });
      assertEquals(await big.deadLetter(letter("e", 10, 1_100_000)), {
        status: "refused",
        why: "too large for the dead-letter queue",
      });
      const got = new Map(
        (await receiveAll(client, bigDlq)).map((m) => [m.MessageAttributes!.masq_message_id.StringValue, m]),
      );
      assertEquals([...got.keys()].sort(), ["a", "b", "c", "d"]);
      for (const l of letters) assertEquals(got.get(l.messageId)!.Body, l.body);
      assertEquals(got.get("d")!.Body, BODY_LEFT_OUT);
      assertEquals(got.get("d")!.MessageAttributes!.masq_original.StringValue!.length, 600_000);
    } finally {
      big.close();
    }

    const small = await openJsonSource(sqs.endpoint, queueUrl, smallDlq);
    try {
      assertEquals(await small.deadLetter(letter("f", 100_000, 200_000)), { status: "sent" });
      assertEquals(await small.deadLetter(letter("g", 10, 270_000)), {
        status: "refused",
        why: "too large for the dead-letter queue",
      });
      const [f, ...rest] = await receiveAll(client, smallDlq);
      assertEquals(rest.length, 0);
      assertEquals(f.Body, BODY_LEFT_OUT);
      assertEquals(f.MessageAttributes!.masq_original.StringValue!.length, 200_000);
    } finally {
      small.close();
    }
  } finally {
    client.destroy();
    await sqs.stop();
  }
});

Deno.test("openSqsSource() prints queue URLs without their credentials, in its errors and its log lines", async () => {
  const sqs = await startEmbeddedSqs();
  try {
    const withCredentials = (name: string) => sqs.queueUrl(name).replace("http://", "http://user:s3cr3t-pw@");
    const err = await assertRejects(
      () => openJsonSource(sqs.endpoint, withCredentials("missing"), withCredentials("missing-dlq")),
      ConfigError,
    );
    assert(!err.message.includes("s3cr3t-pw"), err.message);
    assertEquals(err.message.includes("queue does not exist"), true);

    sqs.createQueue("login-queue");
    const { lines, log } = recorder();
    const source = await openJsonSource(
      sqs.endpoint,
      withCredentials("login-queue"),
      withCredentials("new-dlq"),
      {
        log,
      },
    );
    source.close();
    const text = JSON.stringify(lines);
    assert(lines.some((l) => l.msg === "connected to SQS"));
    assert(lines.some((l) => l.msg === "created dead-letter queue"));
    assert(!text.includes("s3cr3t-pw"), text);
  } finally {
    await sqs.stop();
  }
});

Deno.test("deadLetter() of the SQS source: letters sent together arrive whole, each with its attributes", async () => {
  const sqs = await startEmbeddedSqs();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue");
    const dlqUrl = sqs.createQueue("login-queue-dlq");
    const source = await openJsonSource(sqs.endpoint, queueUrl, dlqUrl);
    try {
      // Twelve at once: a batch of ten, then two more; one body escaping a character SQS cannot carry raw,
      // as redactBody() writes every body (ASCII JSON).
      const letters = Array.from({ length: 12 }, (_, i) => ({
        messageId: `m${i}`,
        body: i === 3 ? '{"note":"\\uffff"}' : `{"n":${i}}`,
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

Deno.test("receive() of the SQS source asks for the replay attributes, keys a verified replay by its letter, and ignores forged ones with one warning naming the SQS message id", async () => {
  const sqs = await startEmbeddedSqs();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue");
    const dlqUrl = sqs.createQueue("login-queue-dlq");
    const send = (body: string, attributes: Record<string, string>) =>
      client.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: body,
          MessageAttributes: Object.fromEntries(
            Object.entries(attributes).map(([k, v]) => [k, stringAttribute(v)]),
          ),
        }),
      );
    const genuine = await send("genuine", { masq_redrive_id: LETTER_ID, masq_redrive_mac: GOOD_MAC });
    const forged = await send("forged", {
      masq_redrive_id: "device-593-47-5928",
      masq_redrive_mac: GOOD_MAC,
    });
    const plain = await send("plain", {});
    const { lines, log } = recorder();
    const source = await openJsonSource(sqs.endpoint, queueUrl, dlqUrl, { log, verifyRedrive: verifyReplay });
    try {
      const got = [];
      for (let i = 0; i < 5 && got.length < 3; i++) got.push(...await source.receive());
      const ids = Object.fromEntries(got.map((m) => [m.body, m.id]));
      assertEquals(ids, {
        genuine: `redrive:${LETTER_ID}`,
        forged: forged.MessageId,
        plain: plain.MessageId,
      });
      assert(genuine.MessageId !== undefined);
      const warnings = lines.filter((l) => l.level === "warn");
      assertEquals(warnings.map((w) => w.fields), [{ message_id: forged.MessageId }]);
      assert(!JSON.stringify(lines).includes("593-47-5928"));
    } finally {
      source.close();
    }
  } finally {
    client.destroy();
    await sqs.stop();
  }
});

Deno.test("receive() of the SQS source over JSON names exactly the replay attributes in its request", async () => {
  const sqs = await startEmbeddedSqs();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue");
    const asked: unknown[] = [];
    client.middlewareStack.add((next, context) => (args) => {
      if (context.commandName === "ReceiveMessageCommand") {
        asked.push((args.input as { MessageAttributeNames?: string[] }).MessageAttributeNames);
      }
      return next(args);
    });
    const source = sqsSource(client, {
      queueUrl,
      dlqUrl: `${queueUrl}-dlq`,
      endpoint: sqs.endpoint,
      region: "us-east-1",
      protocol: "json",
      batchSize: 10,
      waitSeconds: 0,
      visibilityTimeout: 30,
      log: silentLogger,
    }, "json");
    await source.receive();
    assertEquals(asked, [["masq_redrive_id", "masq_redrive_mac"]]);
    assertEquals(RECEIVE_MESSAGE_ATTRIBUTES, ["masq_redrive_id", "masq_redrive_mac"]);
  } finally {
    client.destroy();
    await sqs.stop();
  }
});
