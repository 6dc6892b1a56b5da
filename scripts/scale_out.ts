/**
 * Competing consumers, measured: seeds one fauxqs queue with N synthetic logins (~1% bad), starts P
 * `masq run` processes on it at once (the real CLI, the permissions of `deno task masq`, each under
 * /usr/bin/time for its peak RSS), and reports the wall time until the last one exits, the rows written
 * and the messages per second of all of them together.
 *
 *   deno run --allow-all scripts/scale_out.ts --database-url postgres://postgres@127.0.0.1:5432/test \
 *     --messages 20000 --processes 1,2,4
 *
 * The database's masq tables are dropped and recreated before each round. A measurement aid for the
 * README's Scaling section, not a test.
 */
import { parseArgs } from "node:util";
import pg from "pg";
import { startEmbeddedSqs } from "../lib/embedded.ts";
import { synthetic } from "../lib/synthetic.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "database-url": { type: "string" },
    messages: { type: "string", default: "20000" },
    processes: { type: "string", default: "1,2,4" },
    concurrency: { type: "string", default: "8" },
  },
  strict: true,
});
const databaseUrl = values["database-url"];
if (!databaseUrl) throw new Error("--database-url is required");
const total = Number(values.messages);
const ROOT = new URL("../", import.meta.url).pathname;
const task = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks.masq as string;
const perms = task.split(" ").filter((a) => a.startsWith("--allow-") || a === "--no-prompt")
  .map((a) => a.replaceAll("$HOME", Deno.env.get("HOME") ?? ""));

async function resetTables(): Promise<void> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  await c.query(
    "DROP VIEW IF EXISTS user_logins_readable; DROP TABLE IF EXISTS user_logins, user_logins_rejected, user_logins_ledger, pii_vault",
  );
  await c.end();
}

async function rowCount(): Promise<number> {
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  const r = await c.query(
    "SELECT (SELECT count(*) FROM user_logins) + (SELECT count(*) FROM user_logins_rejected) AS n",
  );
  await c.end();
  return Number(r.rows[0].n);
}

for (const processes of values.processes.split(",").map(Number)) {
  await resetTables();
  const sqs = await startEmbeddedSqs();
  const queue = `scale-${processes}`;
  const queueUrl = sqs.createQueue(queue, { VisibilityTimeout: "60" });
  sqs.createQueue(`${queue}-dlq`);
  for (let i = 0; i < total; i++) sqs.send(queue, synthetic(i, 100));
  // The first process creates the schema; the others would race it (that is fine, but not measured).
  const started = performance.now();
  const children = Array.from({ length: processes }, () =>
    new Deno.Command("/usr/bin/time", {
      args: [
        "-f",
        "peak_rss_kib=%M cpu_s=%U+%S",
        Deno.execPath(),
        "run",
        ...perms,
        `${ROOT}main.ts`,
        "run",
        "--concurrency",
        values.concurrency,
      ],
      env: {
        SQS_QUEUE_URL: queueUrl,
        DATABASE_URL: databaseUrl,
        PII_HMAC_KEY: "scale-out-measurement-key-0123456789",
        MASQ_LOG_LEVEL: "warn",
        NO_COLOR: "1",
      },
      stdout: "piped",
      stderr: "piped",
    }).output());
  const outs = await Promise.all(children);
  const seconds = (performance.now() - started) / 1000;
  const rows = await rowCount();
  const stats = outs.map((o) => /peak_rss_kib=(\d+) cpu_s=(\S+)/.exec(new TextDecoder().decode(o.stderr)));
  const peakMiB = Math.max(...stats.map((m) => Number(m?.[1] ?? 0))) / 1024;
  const failed = outs.filter((o) => !o.success).length;
  console.log(JSON.stringify({
    processes,
    messages: total,
    rows,
    failed,
    seconds: Math.round(seconds * 10) / 10,
    rate: Math.round(total / seconds),
    peak_rss_mib_per_process: Math.round(peakMiB),
    cpu_seconds: stats.map((m) => m?.[2]),
  }));
  await sqs.stop();
}
