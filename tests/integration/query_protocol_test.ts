/**
 * The query (XML) protocol, as spoken by the take-home's pre-3.0 LocalStack, tested over the wire against
 * sqslite, a query-only SQS emulator: explicit `--sqs-protocol query`, and `auto` falling back to it.
 */
import sqslite from "sqslite";
import sqsliteState from "sqslite/lib/sqs.js";
import { CreateQueueCommand, SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { createSqsClient, sqsSource } from "../../lib/source/sqs.ts";
import { silentLogger } from "../../lib/log.ts";
import { receiveAll } from "../support/sqs.ts";
import { runMasqCli } from "../support/processes.ts";
import { startDatabase } from "../support/databases.ts";

interface Fastify {
  listen(o: { port: number; host: string }): Promise<string>;
  close(): Promise<void>;
  addHook(
    name: "preHandler",
    fn: (req: { body?: Record<string, string> }, reply: FastifyReply) => Promise<unknown>,
  ): void;
}
interface FastifyReply {
  header(k: string, v: string): FastifyReply;
  send(body: string): FastifyReply;
}

/**
 * sqslite 2.1.1's DeleteMessageBatch filters the wrong way round (it keeps the deleted messages and drops
 * every other one); this hook answers that one action with single deletes on the same in-memory state.
 */
function fixDeleteMessageBatch(app: Fastify): void {
  const state = sqsliteState as unknown as {
    deleteMessage(p: { QueueUrl: string; ReceiptHandle: string }): void;
  };
  // deno-lint-ignore require-await -- fastify treats an async hook that returns the reply as handled
  app.addHook("preHandler", async (req, reply) => {
    const body = req.body;
    if (body?.Action !== "DeleteMessageBatch") return;
    const ids: string[] = [];
    for (let i = 1; body[`DeleteMessageBatchRequestEntry.${i}.Id`] !== undefined; i++) {
      state.deleteMessage({
        QueueUrl: body.QueueUrl,
        ReceiptHandle: body[`DeleteMessageBatchRequestEntry.${i}.ReceiptHandle`],
      });
      ids.push(body[`DeleteMessageBatchRequestEntry.${i}.Id`]);
    }
    const entries = ids.map((id) =>
      `<DeleteMessageBatchResultEntry><Id>${id}</Id></DeleteMessageBatchResultEntry>`
    );
    return reply.header("Content-Type", "application/xml").send(
      `<DeleteMessageBatchResponse><DeleteMessageBatchResult>${entries.join("")}</DeleteMessageBatchResult>` +
        `<ResponseMetadata><RequestId>0</RequestId></ResponseMetadata></DeleteMessageBatchResponse>`,
    );
  });
}

async function startSqslite(): Promise<{ endpoint: string; close: () => Promise<void> }> {
  // sqslite only recognises queue URLs on "localhost".
  const app = (sqslite as unknown as (o: object) => Fastify)({ logger: false });
  fixDeleteMessageBatch(app);
  const address = await app.listen({ port: 0, host: "localhost" });
  return {
    endpoint: address.replace("127.0.0.1", "localhost").replace("[::1]", "localhost"),
    close: () => app.close(),
  };
}

async function seed(endpoint: string, name: string, bodies: string[]): Promise<string> {
  const client = createSqsClient({ endpoint, region: "us-east-1" }, "query");
  try {
    const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: name }));
    for (let i = 0; i < bodies.length; i += 10) {
      await client.send(
        new SendMessageBatchCommand({
          QueueUrl,
          Entries: bodies.slice(i, i + 10).map((b, j) => ({ Id: String(j), MessageBody: b })),
        }),
      );
    }
    return QueueUrl!;
  } finally {
    client.destroy();
  }
}

const bodies = (prefix: string) => [
  ...Array.from(
    { length: 24 },
    (_, i) =>
      JSON.stringify({
        user_id: `${prefix}-${i}`,
        app_version: "2.3.0",
        ip: `10.0.0.${i}`,
        device_id: `d-${i}`,
      }),
  ),
  '{"foo":"oops_wrong_ip","bar":"123"}',
];

Deno.test("masq run --sqs-protocol query drains a query-only SQS into exact rows", async () => {
  const sqs = await startSqslite();
  const db = await startDatabase();
  try {
    const queueUrl = await seed(sqs.endpoint, "login-queue", bodies("q"));
    const res = await runMasqCli(["run", "--sqs-protocol", "query", "--concurrency", "2"], {
      queueUrl,
      databaseUrl: db.url,
    });
    assertEquals(res.code, 0, res.stderr);
    assertMatch(res.stderr, /protocol=query/);
    assertEquals(res.summary?.inserted, 24);
    assertEquals(res.summary?.rejected, 1);
    const rows = await db.query<{ user_id: string }>("SELECT user_id FROM user_logins ORDER BY user_id");
    assertEquals(rows.length, 24);
    assertEquals(new Set(rows.map((r) => r.user_id)).size, 24);
  } finally {
    await db.stop();
    await sqs.close();
  }
});

Deno.test("masq run --sqs-protocol query dead-letters every rejection, each with its attributes", async () => {
  const sqs = await startSqslite();
  const db = await startDatabase();
  const client = createSqsClient({ endpoint: sqs.endpoint, region: "us-east-1" }, "query");
  try {
    // Three bad messages in three receives (their dead letters may share a SendMessageBatch).
    const bad = (i: number) => `{"foo":"bad-${i}","bar":"123"}`;
    const all = bodies("d");
    // A queue of its own: sqslite keeps one in-memory state for the whole process.
    const queueUrl = await seed(sqs.endpoint, "rejects-queue", [
      ...all.slice(0, 8),
      bad(1),
      ...all.slice(8, 16),
      bad(2),
      ...all.slice(16, 24),
      bad(3),
    ]);
    const res = await runMasqCli(["run", "--sqs-protocol", "query", "--concurrency", "4"], {
      queueUrl,
      databaseUrl: db.url,
    });
    assertEquals(res.code, 0, res.stderr);
    assertEquals([res.summary?.inserted, res.summary?.rejected], [24, 3]);
    const letters = await receiveAll(client, `${queueUrl}-dlq`);
    assertEquals(letters.length, 3);
    for (const l of letters) {
      assertEquals(l.MessageAttributes?.masq_reason?.StringValue, "user_id is missing");
      assert(l.MessageAttributes?.masq_message_id?.StringValue, "each letter names its message");
    }
    const [n] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins_rejected");
    assertEquals(n.n, 3);
  } finally {
    client.destroy();
    await db.stop();
    await sqs.close();
  }
});

Deno.test("deadLetter() over the query protocol: letters given at once go in one SendMessageBatch and arrive whole", async () => {
  const sqs = await startSqslite();
  const client = createSqsClient({ endpoint: sqs.endpoint, region: "us-east-1" }, "query");
  try {
    const queueUrl = await seed(sqs.endpoint, "letters-queue", []);
    const dlqUrl = await seed(sqs.endpoint, "letters-queue-dlq", []);
    const sent: string[] = [];
    client.middlewareStack.add((next, context) => (args) => {
      sent.push(context.commandName ?? "");
      return next(args);
    });
    const source = sqsSource(client, {
      queueUrl,
      dlqUrl,
      endpoint: sqs.endpoint,
      region: "us-east-1",
      protocol: "query",
      batchSize: 10,
      waitSeconds: 0,
      visibilityTimeout: 30,
      log: silentLogger,
    }, "query");
    const letters = [1, 2, 3].map((i) => ({
      messageId: `m${i}`,
      body: `{"n":${i}}`,
      attributes: { masq_reason: `reason ${i}`, masq_message_id: `m${i}` },
    }));
    const outcomes = await Promise.all(letters.map((l) => source.deadLetter(l)));
    assertEquals(outcomes, letters.map(() => ({ status: "sent" })));
    assertEquals(sent, ["SendMessageBatchCommand"]);
    const got = await receiveAll(client, dlqUrl);
    assertEquals(
      got.map((m) => [m.Body, m.MessageAttributes?.masq_reason?.StringValue]).sort(),
      letters.map((l) => [l.body, l.attributes.masq_reason]),
    );
  } finally {
    client.destroy();
    await sqs.close();
  }
});

Deno.test("masq run with --sqs-protocol auto switches to query once when JSON is refused, and logs it", async () => {
  const sqs = await startSqslite();
  const db = await startDatabase();
  try {
    const queueUrl = await seed(sqs.endpoint, "login-queue", bodies("a"));
    const res = await runMasqCli(["run", "--concurrency", "2"], { queueUrl, databaseUrl: db.url });
    assertEquals(res.code, 0, res.stderr);
    assertMatch(res.stderr, /switching to the query protocol/);
    assertEquals(res.stderr.match(/switching to the query protocol/g)?.length, 1);
    assertEquals(res.summary?.inserted, 24);
    const n = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins");
    assertEquals(n[0].n, 24);

    // JSON forced against the same server: a start-up configuration error, exit 2, one line.
    const forced = await runMasqCli(["run", "--sqs-protocol", "json"], { queueUrl, databaseUrl: db.url });
    assertEquals(forced.code, 2);
    const last = forced.stderr.trim().split("\n").at(-1)!;
    assertMatch(
      last,
      /^masq: --sqs-protocol \/ MASQ_SQS_PROTOCOL: json was asked for, but the SQS endpoint refused the JSON protocol \(Unsupported Media Type[^)]*\)+; use --sqs-protocol query, or auto/,
    );
    assert(!forced.stderr.includes("$response"), `the SDK's advice is not passed on: ${forced.stderr}`);
    assert(!forced.stderr.includes("    at "), "no stack trace");
  } finally {
    await db.stop();
    await sqs.close();
  }
});

Deno.test("receive() over the query protocol names no message attribute (sqslite fails a receive naming one its messages lack): replays are keyed by their SQS message id", async () => {
  const sqs = await startSqslite();
  const client = createSqsClient({ endpoint: sqs.endpoint, region: "us-east-1" }, "query");
  try {
    const queueUrl = await seed(sqs.endpoint, "attributes-queue", ['{"user_id":"u1"}']);
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
      protocol: "query",
      batchSize: 10,
      waitSeconds: 0,
      visibilityTimeout: 30,
      log: silentLogger,
      verifyRedrive: () => true,
    }, "query");
    const [m] = await source.receive();
    assertEquals(asked, [undefined]);
    assertMatch(m.id, /^[0-9a-f-]{36}$/);
  } finally {
    client.destroy();
    await sqs.close();
  }
});
