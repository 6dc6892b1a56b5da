/**
 * `masq bench`: seeds an embedded SQS with N synthetic messages, drains it with masq into PostgreSQL
 * (BENCH_DATABASE_URL, else embedded PGlite), and beside it measures the bare ceiling: a receive+delete
 * loop with the same SDK, batch size and concurrency that does nothing else. Rounds alternate the two, so
 * the ratio is measured under the same machine conditions.
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from "@aws-sdk/client-sqs";
import pg from "pg";
import { configFromFlags } from "./config.ts";
import type { Logger } from "./log.ts";
import { silentLogger } from "./log.ts";
import { runMasq } from "./run.ts";
import { dropRoles, migrate } from "./sink/schema.ts";
import { type EmbeddedSqs, startEmbeddedPostgres, startEmbeddedSqs } from "./embedded.ts";
import { createSqsClient } from "./source/sqs.ts";
import { synthetic } from "./synthetic.ts";

const CONCURRENCY = 8;
const BENCH_KEY = "masq-bench-key-not-secret";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function ceiling(sqs: EmbeddedSqs, queue: string, n: number): Promise<number> {
  const url = sqs.queueUrl(queue);
  const client = createSqsClient({ endpoint: sqs.endpoint, region: "us-east-1" }, "json");
  let received = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (received < n) {
      const res = await client.send(
        new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 1,
          MessageSystemAttributeNames: ["SentTimestamp", "ApproximateReceiveCount"],
        }),
      );
      const msgs = res.Messages ?? [];
      if (msgs.length === 0) continue;
      received += msgs.length;
      await client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: url,
          Entries: msgs.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  client.destroy();
  return received / seconds;
}

/** A fresh schema on a real server, reached through the URL's `options=-c search_path=...`. */
async function freshSchema(baseUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const schema = `masq_bench_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(`SET search_path = ${schema}`);
  await migrate(admin, { rolePrefix: `${schema}_` });
  await admin.end();
  const u = new URL(baseUrl);
  u.searchParams.set("options", `-c search_path=${schema}`);
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: baseUrl });
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await dropRoles(c, `${schema}_`);
      await c.end();
    },
  };
}

export interface BenchOptions {
  log: Logger;
  print: (line: string) => void;
  messages?: number | undefined;
  rounds?: number;
  env: (name: string) => string | undefined;
}

/**
 * Runs the benchmark and returns the figures (printed as JSON by the CLI).
 *
 * @example
 * ```ts
 * const result = await runBench({ log, print: console.error, messages: 20_000, env: Deno.env.get });
 * result.ratio; // masq rate / ceiling rate
 * ```
 */
export async function runBench(opts: BenchOptions) {
  const n = opts.messages ?? 20_000;
  const rounds = opts.rounds ?? 3;
  const { print } = opts;
  const external = opts.env("BENCH_DATABASE_URL");
  const sqs = await startEmbeddedSqs();
  const embedded = external ? undefined : await startEmbeddedPostgres();
  if (embedded) {
    const c = new pg.Client({ connectionString: embedded.url });
    await c.connect();
    await migrate(c).finally(() => c.end());
  }
  const ceilingRates: number[] = [];
  const masqRates: number[] = [];
  let peakRss = 0;
  try {
    print(
      `masq bench: ${n} messages, concurrency ${CONCURRENCY}, ${rounds} rounds, database: ${
        external ? "BENCH_DATABASE_URL (PostgreSQL)" : "embedded PGlite (one connection)"
      }`,
    );
    for (let r = 1; r <= rounds; r++) {
      const cq = `bench-ceiling-${r}`;
      sqs.createQueue(cq);
      for (let i = 0; i < n; i++) sqs.send(cq, synthetic(i));
      const c = await ceiling(sqs, cq, n);
      ceilingRates.push(c);

      const mq = `bench-masq-${r}`;
      const queueUrl = sqs.createQueue(mq, { VisibilityTimeout: "60" });
      for (let i = 0; i < n; i++) sqs.send(mq, synthetic(i));
      const db = external ? await freshSchema(external) : { url: embedded!.url, drop: async () => {} };
      const config = configFromFlags({
        "queue-url": queueUrl,
        "database-url": db.url,
        "sqs-protocol": "json",
        concurrency: String(CONCURRENCY),
        "db-pool-size": String(external ? CONCURRENCY : 1),
        "max-backoff-ms": "2000",
        "log-level": "warn",
      }, BENCH_KEY);
      const summary = await runMasq(config, { log: silentLogger, progressEveryMs: 0 });
      if (embedded) await embedded.db.exec("TRUNCATE user_logins, user_logins_ledger, user_logins_rejected");
      await db.drop();
      if (summary.inserted !== n) {
        throw new Error(`bench: masq inserted ${summary.inserted} of ${n} messages`);
      }
      masqRates.push(summary.rate);
      peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
      print(
        `  round ${r}: ceiling ${c.toFixed(0)} msg/s, masq ${summary.rate.toFixed(0)} msg/s (${
          (summary.rate / c * 100).toFixed(0)
        }%)`,
      );
    }
  } finally {
    await embedded?.stop();
    await sqs.stop();
  }
  const result = {
    messages: n,
    rounds,
    concurrency: CONCURRENCY,
    database: external ? "postgresql" : "pglite",
    ceiling_rate: Math.round(median(ceilingRates)),
    masq_rate: Math.round(median(masqRates)),
    ratio: Math.round((median(masqRates) / median(ceilingRates)) * 1000) / 1000,
    peak_rss_mib: Math.round(peakRss / 1048576),
  };
  print(
    `median: masq ${result.masq_rate} msg/s vs ceiling ${result.ceiling_rate} msg/s = ${
      (result.ratio * 100).toFixed(0)
    }% (peak RSS ${result.peak_rss_mib} MiB)`,
  );
  return result;
}
