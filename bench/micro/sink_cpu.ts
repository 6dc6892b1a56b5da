/**
 * masq's own CPU per row written to PostgreSQL: `writeBatches()` of 250 realistic rows at a time (what the
 * coalescing writer sends under load) into a freshly migrated schema, timed by process.cpuUsage(), so the
 * server's work is not counted; the wall time per row is printed beside it. Needs a database:
 *
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test deno run --allow-net --allow-env --allow-read bench/micro/sink_cpu.ts
 *
 * The schema and its roles are dropped at the end.
 */
import process from "node:process";
import pg from "pg";
import { silentLogger } from "../../lib/log.ts";
import { WRITE_ROWS } from "../../lib/pipeline.ts";
import { createPostgresSink } from "../../lib/sink/postgres.ts";
import { migrate } from "../../lib/sink/schema.ts";
import { realistic } from "../synthetic.ts";
import { createMasker } from "../../lib/transform/mask.ts";
import { toRecordSync } from "../../lib/transform/record.ts";

const base = Deno.env.get("BENCH_DATABASE_URL");
if (!base) {
  console.error("BENCH_DATABASE_URL is not set: this benchmark writes to a real PostgreSQL");
  Deno.exit(2);
}
const N = 50_000;
const schema = `sink_cpu_${crypto.randomUUID().slice(0, 8)}`;
const url = new URL(base);
url.searchParams.set("options", `-c search_path=${schema}`);

const admin = new pg.Client({ connectionString: base });
await admin.connect();
await admin.query(`CREATE SCHEMA ${schema}`);
try {
  const setup = new pg.Client({ connectionString: url.href });
  await setup.connect();
  await migrate(setup, { rolePrefix: `${schema}_` });
  await setup.end();

  const sink = createPostgresSink(url.href, { poolSize: 4, log: silentLogger });
  await sink.checkSchema();
  const masker = createMasker("bench-only-key-0123456789abcdef0123456789abcdef");
  const records = Array.from({ length: N }, (_, i) =>
    toRecordSync({
      id: `m-${i}`,
      receiptHandle: "",
      body: realistic(i, { seed: 3 }).body,
      sentTimestamp: 1_700_000_000_000,
      receiveCount: 1,
    }, masker));
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < N; i += WRITE_ROWS) await sink.writeBatches([records.slice(i, i + WRITE_ROWS)]);
  const used = process.cpuUsage(cpu);
  const wallUs = (performance.now() - start) * 1000 / N;
  await sink.close();
  console.log(
    `${((used.user + used.system) / N).toFixed(1)} µs of masq's CPU per row written ` +
      `(${wallUs.toFixed(1)} µs wall per row, the server's work included), ${WRITE_ROWS} rows per statement`,
  );
} finally {
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  for (const role of ["writer", "analyst", "privacy_officer"]) {
    await admin.query(`DROP ROLE IF EXISTS ${schema}_${role}`);
  }
  await admin.end();
}
