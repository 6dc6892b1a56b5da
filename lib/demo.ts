/**
 * `masq demo`: the whole pipeline with nothing installed but Deno. Embedded SQS and PostgreSQL, the
 * queue seeded from data/sample_logins.jsonl through the AWS SDK, the real run path between them, then
 * a preview of what landed.
 */
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { configFromFlags } from "./config.ts";
import { DEMO_HMAC_KEY } from "./secrets.ts";
import type { Logger } from "./log.ts";
import type { Summary } from "./pipeline.ts";
import { runMasq } from "./masq.ts";
import { startEmbeddedPostgres, startEmbeddedSqs } from "./embedded.ts";
import { batchesOfTen, createSqsClient } from "./source/sqs.ts";
import { pgTypes } from "./sink/postgres.ts";
import { connectClient, processEnv } from "./sink/connection.ts";
import { migrate } from "./sink/schema.ts";

/** Sends lines as messages, ten per SendMessageBatch. */
export async function seedQueue(
  endpoint: string,
  queueUrl: string,
  bodies: readonly string[],
): Promise<void> {
  const client = createSqsClient({ endpoint, region: "us-east-1" }, "json");
  try {
    for (const chunk of batchesOfTen(bodies)) {
      const res = await client.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((b, j) => ({ Id: String(j), MessageBody: b })),
        }),
      );
      if (res.Failed?.length) throw new Error(`seeding failed for ${res.Failed.length} messages`);
    }
  } finally {
    client.destroy();
  }
}

function table(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return "(no rows)";
  const cols = Object.keys(rows[0]);
  const cell = (v: unknown) => {
    const s = v === null || v === undefined ? "∅" : String(v);
    return s.length > 24 ? s.slice(0, 12) + "…" + s.slice(-8) : s;
  };
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join(" | ");
  return [
    line(cols),
    widths.map((w) => "-".repeat(w)).join("-+-"),
    ...rows.map((r) => line(cols.map((c) => cell(r[c])))),
  ]
    .join("\n");
}

/**
 * Runs the demo and returns the run's summary; the preview goes to `print` (stdout).
 *
 * @example
 * ```ts
 * import { runDemo, seedQueue } from "./demo.ts";
 * import { startEmbeddedSqs } from "./embedded.ts";
 * import { createLogger } from "./log.ts";
 *
 * const summary = await runDemo({
 *   log: createLogger(),
 *   print: console.log,
 *   samplePath: "data/sample_logins.jsonl",
 * });
 * console.log(summary.inserted, summary.rejected); // 99 1
 *
 * // Seeding a queue of one's own, ten messages per SendMessageBatch:
 * const sqs = await startEmbeddedSqs();
 * await seedQueue(sqs.endpoint, sqs.createQueue("login-queue"), ['{"user_id":"u1"}']);
 * await sqs.stop();
 * ```
 */
export async function runDemo(
  opts: { log: Logger; print: (s: string) => void; samplePath: string },
): Promise<Summary> {
  const { log, print } = opts;
  const bodies = (await Deno.readTextFile(opts.samplePath)).split("\n").filter((l) => l.trim() !== "");
  log.warn("DEMO: using a fixed, public HMAC key; tokens made with it protect nothing");
  const sqs = await startEmbeddedSqs();
  const pgl = await startEmbeddedPostgres();
  try {
    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "30" });
    await seedQueue(sqs.endpoint, queueUrl, bodies);
    log.info("seeded the embedded queue", { messages: bodies.length, queue: queueUrl });
    // The embedded server speaks no TLS: say so, whatever PGSSLMODE the shell has (the URL wins).
    const databaseUrl = new URL(pgl.url);
    databaseUrl.searchParams.set("sslmode", "disable");
    const config = configFromFlags({
      "queue-url": queueUrl,
      "database-url": databaseUrl.href,
      "sqs-protocol": "json",
      concurrency: "4",
      "db-pool-size": "1",
      "max-backoff-ms": "2000",
    }, DEMO_HMAC_KEY);
    const client = await connectClient(databaseUrl.href, processEnv, { types: pgTypes });
    try {
      // What `masq migrate` does: masq run itself never runs DDL.
      await migrate(client);
      const summary = await runMasq(config, { log });
      const rows = await client.query(
        "SELECT * FROM user_logins_readable ORDER BY create_date DESC, user_id LIMIT 10",
      );
      const count = await client.query("SELECT count(*)::int AS n FROM user_logins");
      const dups = await client.query(
        `SELECT masked_ip, masked_device_id, count(*)::int AS logins FROM user_logins
         GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 3 DESC LIMIT 5`,
      );
      const rejected = await client.query(
        "SELECT message_id, reason, body_redacted FROM user_logins_rejected",
      );
      print(`\nuser_logins_readable (10 of ${count.rows[0].n} rows):\n${table(rows.rows)}`);
      print(
        `\nrepeated (masked_ip, masked_device_id) pairs, still visible after masking:\n${table(dups.rows)}`,
      );
      print(
        `\nuser_logins_rejected (${rejected.rowCount}; also sent to the dead-letter queue):\n${
          table(rejected.rows)
        }`,
      );
      print("");
      return summary;
    } finally {
      await client.end();
    }
  } finally {
    await pgl.stop();
    await sqs.stop();
  }
}
