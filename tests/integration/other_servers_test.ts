/**
 * docs/sqs.md "Other SQS servers": the paths that matter (drain into rows, rejections, dead letters,
 * redrive, follow and stop) against moto_server, over both of its protocols, started by the test on a port
 * of 56440-56459 and killed after; and a stop while idle that leaves no message in a dead long poll (moto
 * keeps a long poll the client gave up on open, and hands it the next messages sent).
 */
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { startDatabase } from "../support/databases.ts";
import { ledgerCount, waitFor } from "../support/delivery.ts";
import { seedQueue } from "../../lib/demo.ts";
import { receiveAll } from "../support/sqs.ts";
import { collect, killAndReap, ROOT, runMasqCli, spawnMasq, waitForOutput } from "../support/processes.ts";
import { startSqsServer } from "../support/sqs_servers.ts";
import { VAULT_KEY_B64 } from "../support/lifecycle.ts";

const SAMPLE = Deno.readTextFileSync(`${ROOT}data/sample_logins.jsonl`).split("\n").filter(Boolean);
/** The long-poll wait of the follow run: a stop takes at most about this long. */
const WAIT_SECONDS = 5;
/** Messages of the busy stop. */
const BUSY = 1000;

for (const protocol of ["json", "query"] as const) {
  Deno.test(`masq against moto_server over ${protocol}: drain, rejection, dead letter, redrive, follow, and a stop that strands nothing`, async () => {
    const server = await startSqsServer("moto");
    const db = await startDatabase();
    let child: Deno.ChildProcess | undefined;
    try {
      const { client } = server;
      const queueUrl = await server.createQueue("login-queue", { VisibilityTimeout: "30" });
      const dlqUrl = `${queueUrl}-dlq`;
      const env = {
        queueUrl,
        databaseUrl: db.url,
        extra: { MASQ_SQS_PROTOCOL: protocol, PII_VAULT_KEY: VAULT_KEY_B64 },
      };

      // Drain: exact counts, the one rejection recorded and dead-lettered.
      await seedQueue(server.endpoint, queueUrl, SAMPLE);
      const res = await runMasqCli(["run", "--concurrency", "4"], env);
      assertEquals(res.code, 0, res.stderr);
      assertMatch(res.stderr, new RegExp(`connected to SQS.*protocol=${protocol}|"protocol":"${protocol}"`));
      assertEquals(
        [
          (res.summary?.received ?? 0) - (res.summary?.duplicates ?? 0),
          res.summary?.inserted,
          res.summary?.rejected,
        ],
        [100, 99, 1],
      );
      const rows = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins");
      assertEquals(rows[0].n, 99);
      const letters = await receiveAll(client, dlqUrl);
      assertEquals(letters.length, 1);
      assertEquals(letters[0].MessageAttributes?.masq_reason?.StringValue, "user_id is missing");
      // Visible again, for the redrive.
      const { ChangeMessageVisibilityCommand } = await import("@aws-sdk/client-sqs");
      await client.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: dlqUrl,
          ReceiptHandle: letters[0].ReceiptHandle!,
          VisibilityTimeout: 0,
        }),
      );

      // Redrive puts it back; the next run rejects and dead-letters the replay once more.
      const redriven = await runMasqCli(["redrive", "--reason", "moto test"], env);
      assertEquals(redriven.code, 0, redriven.stderr);
      assertEquals(JSON.parse(redriven.stdout.trim().split("\n").at(-1)!).redriven, 1);
      const again = await runMasqCli(["run"], env);
      assertEquals(again.code, 0, again.stderr);
      assertEquals([again.summary?.received, again.summary?.rejected], [1, 1]);
      assertEquals((await receiveAll(client, dlqUrl)).length, 1);

      // Follow, idle, stopped: the stop lets the long polls end on the server's side too.
      const follow = child = spawnMasq(
        ["run", "--follow", "--concurrency", "4", "--wait-seconds", String(WAIT_SECONDS)],
        env,
      );
      await waitForOutput(follow, /connected to SQS/);
      // The receivers are in their long polls.
      await new Promise((r) => setTimeout(r, 1500));
      const signalled = Date.now();
      follow.kill("SIGTERM");
      const stopped = await collect(follow);
      const stopSeconds = (Date.now() - signalled) / 1000;
      assertEquals(stopped.code, 0, stopped.stderr);
      assertEquals(stopped.summary?.received, 0);
      console.log(`moto ${protocol}: an idle --follow run stopped ${stopSeconds.toFixed(1)} s after SIGTERM`);
      assert(stopSeconds < WAIT_SECONDS + 5, `the stop took ${stopSeconds} s`);

      // Sent after the stop with no consumer: every one visible, none handed to a dead long poll.
      await seedQueue(server.endpoint, queueUrl, SAMPLE);
      await new Promise((r) => setTimeout(r, WAIT_SECONDS * 1000 + 500));
      const attrs = await client.send(
        new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["All"] }),
      );
      assertEquals(
        [
          attrs.Attributes?.ApproximateNumberOfMessages,
          attrs.Attributes?.ApproximateNumberOfMessagesNotVisible,
        ],
        ["100", "0"],
        "messages sent after the stop were handed to long polls nobody reads",
      );
      const last = await runMasqCli(["run"], env);
      assertEquals(last.code, 0, last.stderr);
      // moto delivers a message twice now and then (at least once, as SQS may): counted.
      assertEquals(
        [(last.summary?.received ?? 0) - (last.summary?.duplicates ?? 0), last.summary?.inserted],
        [100, 99],
      );

      // Busy, stopped mid-drain: what was received is committed and deleted, nothing left in flight, and a
      // second run takes the rest without a duplicate.
      const many = Array.from(
        { length: BUSY },
        (_, i) => JSON.stringify({ user_id: `busy-${i}`, ip: "10.1.0.1" }),
      );
      await seedQueue(server.endpoint, queueUrl, many);
      const busy = child = spawnMasq(["run", "--concurrency", "4"], env);
      const before = await ledgerCount(db);
      assert(await waitFor(async () => (await ledgerCount(db)) >= before + 100, 60_000, 20), "no progress");
      busy.kill("SIGTERM");
      const cut = await collect(busy);
      assertEquals(cut.code, 0, cut.stderr);
      const depth = await client.send(
        new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["All"] }),
      );
      assertEquals(
        depth.Attributes?.ApproximateNumberOfMessagesNotVisible,
        "0",
        `messages left in flight; the run's log:\n${cut.stderr.split("\n").slice(-30).join("\n")}`,
      );
      const rest = await runMasqCli(["run", "--concurrency", "4"], env);
      assertEquals(rest.code, 0, rest.stderr);
      console.log(
        `moto ${protocol}: busy stop ${JSON.stringify(cut.summary)}, then ${JSON.stringify(rest.summary)}`,
      );
      // SQS delivers at least once (moto too: it has delivered a message twice within one run): every extra
      // delivery must be a counted duplicate, and every message one row.
      assertEquals(
        (cut.summary?.received ?? 0) + (rest.summary?.received ?? 0) - (rest.summary?.duplicates ?? 0) -
          (cut.summary?.duplicates ?? 0),
        BUSY,
      );
      const busyRows = await db.query<{ n: number; all: number }>(
        "SELECT count(DISTINCT user_id)::int AS n, count(*)::int AS all FROM user_logins WHERE user_id LIKE 'busy-%'",
      );
      assertEquals(busyRows[0], { n: BUSY, all: BUSY });
    } finally {
      await killAndReap(child);
      await db.stop();
      await server.stop();
    }
  });
}
