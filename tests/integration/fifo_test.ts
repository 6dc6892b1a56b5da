/**
 * docs/sqs.md "FIFO queues", against fauxqs and moto_server (both keep FIFO group order and deduplicate):
 * masq run on `login-queue.fifo` creates `login-queue-dlq.fifo` as a FIFO queue, dead-letters each rejection
 * into its message's group with a deduplication id, writes every group in order (also across a kill -9
 * and a rerun), and `masq redrive` puts the letters back into their groups of the source queue, in order.
 * The pure parts (names, the default DLQ) are tested in tests/source/queue_name_test.ts.
 */
import {
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  type Message as SqsMessage,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { startDatabase, type TestDatabase } from "../support/databases.ts";
import { waitFor } from "../support/delivery.ts";
import { collect, hasExited, killAndReap, runMasqCli, spawnMasq } from "../support/processes.ts";
import { SQS_SERVERS, startSqsServer } from "../support/sqs_servers.ts";
import { VAULT_KEY_B64 } from "../support/lifecycle.ts";

const GROUPS = 4;
const PER_GROUP = 40;
/** Every seventh message of a group has no user_id: a rejection, dead-lettered. */
const isBad = (i: number) => i % 7 === 3;

interface Sent {
  /** SQS message id -> [group, index in the group]. */
  byId: Map<string, [string, number]>;
  bad: number;
}

async function seed(client: SQSClient, queueUrl: string): Promise<Sent> {
  const byId = new Map<string, [string, number]>();
  let bad = 0;
  // Interleaved across the groups, each group in index order.
  for (let i = 0; i < PER_GROUP; i++) {
    for (let g = 0; g < GROUPS; g++) {
      const group = `g${g}`;
      const body = isBad(i)
        ? JSON.stringify({ ip: `10.0.${g}.${i}`, note: `bad ${group}-${i}` })
        : JSON.stringify({ user_id: `${group}-${i}`, ip: `10.0.${g}.${i}`, device_id: `d-${group}-${i}` });
      if (isBad(i)) bad++;
      const res = await client.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: body,
          MessageGroupId: group,
          MessageDeduplicationId: `${group}-${i}`,
        }),
      );
      byId.set(res.MessageId!, [group, i]);
    }
  }
  return { byId, bad };
}

/** Receives and deletes everything in a FIFO queue (a group's next message comes once the last is deleted). */
async function drainFifo(client: SQSClient, url: string): Promise<SqsMessage[]> {
  const out: SqsMessage[] = [];
  for (let empty = 0; empty < 2;) {
    const res = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageAttributeNames: ["All"],
        MessageSystemAttributeNames: ["MessageGroupId", "MessageDeduplicationId"],
      }),
    );
    const got = res.Messages ?? [];
    if (got.length === 0) {
      empty++;
      continue;
    }
    empty = 0;
    for (const m of got) {
      out.push(m);
      await client.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle! }));
    }
  }
  return out;
}

/**
 * Checks that each group's messages were written in the order they were sent: the ledger's written_at (the
 * writing transaction's start) never goes back within a group. Returns the number of ledger rows seen.
 */
async function checkGroupOrder(db: TestDatabase, sent: Sent, key = (id: string) => id): Promise<number> {
  const rows = await db.query<{ message_id: string; at: string }>(
    "SELECT message_id, extract(epoch FROM written_at)::text AS at FROM user_logins_ledger",
  );
  const byGroup = new Map<string, [number, number][]>();
  for (const r of rows) {
    const where = sent.byId.get(key(r.message_id));
    if (!where) continue;
    const list = byGroup.get(where[0]) ?? [];
    list.push([where[1], Number(r.at)]);
    byGroup.set(where[0], list);
  }
  let seen = 0;
  for (const [group, list] of byGroup) {
    list.sort((a, b) => a[0] - b[0]);
    for (let k = 1; k < list.length; k++) {
      assert(
        list[k][1] >= list[k - 1][1],
        `group ${group}: message ${list[k][0]} was written before message ${list[k - 1][0]}`,
      );
    }
    seen += list.length;
  }
  return seen;
}

const CASES = [
  ...SQS_SERVERS.map((kind) => ({ kind, protocol: "json" as const })),
  { kind: "moto" as const, protocol: "query" as const },
];

for (const { kind, protocol } of CASES) {
  Deno.test(`masq run on a FIFO queue (${kind}, ${protocol}) creates a FIFO DLQ, keeps each group's order, survives kill -9, and redrive restores the groups`, async () => {
    const server = await startSqsServer(kind);
    const db = await startDatabase();
    let child: Deno.ChildProcess | undefined;
    // moto 5.2.1's ReceiveMessage takes the set of groups in flight once per call (sqs/models.py,
    // receive_messages: currently_pending_groups), so concurrent long polls can hand out a later message
    // of a group while an earlier one is in flight. Order is asserted where the server keeps it.
    const strictOrder = kind === "fauxqs";
    try {
      const { client } = server;
      const queueUrl = await server.createQueue("login-queue.fifo", {
        FifoQueue: "true",
        VisibilityTimeout: "4",
      });
      const sent = await seed(client, queueUrl);
      const total = GROUPS * PER_GROUP;
      const env = {
        queueUrl,
        databaseUrl: db.url,
        extra: { PII_VAULT_KEY: VAULT_KEY_B64, MASQ_LOG_FORMAT: "json", MASQ_SQS_PROTOCOL: protocol },
      };

      // A first run killed mid-way: its uncommitted batches come back after the visibility timeout, and
      // until then SQS holds back the rest of their groups.
      const first = child = spawnMasq(["run", "--concurrency", "2", "--batch-size", "2"], env);
      await waitFor(async () => hasExited(first) || (await ledger(db)) >= 20, 60_000, 10);
      if (hasExited(first)) {
        throw new Error(`the first run ended before it was killed: ${(await collect(first)).stderr}`);
      }
      first.kill("SIGKILL");
      await collect(first).catch(() => {});
      const atKill = await ledger(db);
      assert(atKill < total, "the first run had written everything before it was killed");
      const res = await runMasqCli(["run", "--concurrency", "4"], env);
      assertEquals(res.code, 0, res.stderr);
      assertMatch(res.stderr, new RegExp(`"protocol":"${protocol}","fifo":true`));

      // Every message written once, each group in its order.
      assertEquals(await ledger(db), total);
      if (strictOrder) assertEquals(await checkGroupOrder(db, sent), total);
      const rejected = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins_rejected");
      assertEquals(rejected[0].n, sent.bad);

      // The dead-letter queue masq created is FIFO, named login-queue-dlq.fifo.
      const dlqUrl = queueUrl.replace(/login-queue\.fifo$/, "login-queue-dlq.fifo");
      const attrs = await client.send(
        new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ["FifoQueue"] }),
      );
      assertEquals(attrs.Attributes?.FifoQueue, "true");
      // Each letter in its message's group, in the group's order, once (a letter sent again after the kill
      // has the same deduplication id).
      const letters = await drainFifo(client, dlqUrl);
      assertEquals(letters.length, sent.bad, "one letter per rejected message");
      const lastIndex = new Map<string, number>();
      for (const l of letters) {
        const where = sent.byId.get(l.MessageAttributes?.masq_message_id?.StringValue ?? "");
        assert(where, "a letter names its message");
        assertEquals(l.Attributes?.MessageGroupId, where[0], "a letter goes to its message's group");
        if (strictOrder) {
          assert((lastIndex.get(where[0]) ?? -1) < where[1], `group ${where[0]}'s letters out of order`);
        }
        lastIndex.set(where[0], where[1]);
        assertMatch(l.Attributes?.MessageDeduplicationId ?? "", /^[0-9a-f]{64}$/);
      }

      // Redrive: the letters go back (dead-lettered again with the same originals), into their groups. In
      // group g0, a letter that cannot be replayed (no encrypted original) follows the first: it is set
      // aside, and the letters behind it in g0 stay in the DLQ too, so none overtakes it.
      const g0 = letters.filter((l) => l.Attributes?.MessageGroupId === "g0").length;
      let strayed = false;
      for (const l of letters) {
        await client.send(
          new SendMessageCommand({
            QueueUrl: dlqUrl,
            MessageBody: l.Body!,
            MessageAttributes: l.MessageAttributes,
            MessageGroupId: l.Attributes!.MessageGroupId!,
            MessageDeduplicationId: `again-${l.MessageId}`,
          }),
        );
        if (!strayed && l.Attributes?.MessageGroupId === "g0") {
          strayed = true;
          const { masq_original: _o, ...rest } = l.MessageAttributes!;
          await client.send(
            new SendMessageCommand({
              QueueUrl: dlqUrl,
              MessageBody: l.Body!,
              MessageAttributes: rest,
              MessageGroupId: "g0",
              MessageDeduplicationId: `stray-${l.MessageId}`,
            }),
          );
        }
      }
      const redriven = await runMasqCli(["redrive", "--reason", "fifo test"], env);
      assertEquals(redriven.code, 0, redriven.stderr);
      const result = JSON.parse(redriven.stdout.trim().split("\n").at(-1)!);
      assertEquals(result.redriven, sent.bad - (g0 - 1));
      assertEquals(result.left.noOriginal, 1);
      // The rest of g0 was either held back by SQS (the set-aside letter is in flight) or set aside by
      // masq when a receive brought it: in the DLQ either way, with the stray letter.
      assert(result.left.behindInGroup <= g0 - 1, JSON.stringify(result.left));
      const replays = await drainFifo(client, queueUrl);
      assertEquals(replays.length, sent.bad - (g0 - 1));
      assertEquals(replays.filter((r) => r.Attributes?.MessageGroupId === "g0").length, 1, "only g0's first");
      const left = await drainFifo(client, dlqUrl);
      assertEquals(left.length, g0, "the stray letter and the letters behind it stay in the DLQ");
      assert(left.every((l) => l.Attributes?.MessageGroupId === "g0"), "only g0's letters are left");
      const lastReplay = new Map<string, number>();
      for (const r of replays) {
        const where = sent.byId.get(r.MessageAttributes?.masq_original_message_id?.StringValue ?? "");
        assert(where, "a replay names its original message");
        assertEquals(r.Attributes?.MessageGroupId, where[0], "a replay goes back to its group");
        if (strictOrder) {
          assert((lastReplay.get(where[0]) ?? -1) < where[1], `group ${where[0]}'s replays out of order`);
        }
        lastReplay.set(where[0], where[1]);
        assert(JSON.parse(r.Body!).note.startsWith(`bad ${where[0]}-`), "the original body is restored");
      }
    } finally {
      await killAndReap(child);
      await db.stop();
      await server.stop();
    }
  });
}

async function ledger(db: TestDatabase): Promise<number> {
  try {
    return (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins_ledger"))[0].n;
  } catch {
    return 0;
  }
}

Deno.test("masq run on a FIFO queue exits 2 with one line naming --dlq-url when the dead-letter queue named is invalid or not FIFO", async () => {
  const server = await startSqsServer("fauxqs");
  const db = await startDatabase();
  try {
    const queueUrl = await server.createQueue("login-queue.fifo", { FifoQueue: "true" });
    const cases: [string, RegExp][] = [
      [
        queueUrl.replace(/\.fifo$/, ".fifo-dlq"),
        /^masq: --dlq-url: \S+login-queue\.fifo-dlq: queue name may hold only letters, digits, hyphens and underscores/,
      ],
      [
        queueUrl.replace(/\.fifo$/, "-dlq"),
        /^masq: --dlq-url \/ SQS_DLQ_URL: \S+login-queue-dlq: the dead-letter queue of a FIFO queue must be a FIFO queue/,
      ],
    ];
    for (const [dlqUrl, expected] of cases) {
      const res = await runMasqCli(["run", "--dlq-url", dlqUrl], { queueUrl, databaseUrl: db.url });
      assertEquals(res.code, 2, res.stderr);
      assertMatch(res.stderr.trim().split("\n").at(-1)!, expected);
      assert(!res.stderr.includes("    at "), "no stack trace");
    }
  } finally {
    await db.stop();
    await server.stop();
  }
});
