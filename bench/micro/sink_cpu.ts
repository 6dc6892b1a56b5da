/**
 * masq's own CPU per row written to PostgreSQL: `writeBatches()` of 250 realistic rows at a time (what the
 * coalescing writer sends under load) into a freshly migrated schema, timed by process.cpuUsage(), so the
 * server's work is not counted; the wall time per row is printed beside it, and the CPU of the server
 * process (from /proc, when the server runs on this machine and its process is readable). It compares named
 * prepared statements (one parse and plan per connection) with unnamed ones (what masq sends: they work
 * through a pooler in transaction mode), in alternating rounds. Needs a database:
 *
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test deno run --allow-net --allow-env --allow-read --allow-run=cat bench/micro/sink_cpu.ts
 *
 * (`--allow-run=cat` only for the server's CPU: without it that column is left out.)
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
const N = 100_000;
/** Rows per round; rounds alternate between named and unnamed statements. */
const ROUND = 5_000;
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

  const masker = createMasker("bench-only-key-0123456789abcdef0123456789abcdef");
  const records = Array.from({ length: N }, (_, i) =>
    toRecordSync({
      id: `m-${i}`,
      receiptHandle: "",
      body: realistic(i, { seed: 3 }).body,
      sentTimestamp: 1_700_000_000_000,
      receiveCount: 1,
    }, masker));
  // Named (parsed and planned once per connection) against unnamed statements, in alternating rounds of
  // ROUND rows each, on one connection whose server process's CPU is read from /proc when it is local.
  const totals = {
    named: { cpu: 0, server: 0, wall: 0, rows: 0 },
    unnamed: { cpu: 0, server: 0, wall: 0, rows: 0 },
  };
  const sinks = {
    named: createPostgresSink(url.href, { poolSize: 1, log: silentLogger, namedStatements: "on" }),
    unnamed: createPostgresSink(url.href, { poolSize: 1, log: silentLogger, namedStatements: "off" }),
  };
  const pids: Record<string, number> = {};
  for (const [mode, sink] of Object.entries(sinks)) {
    await sink.checkSchema();
    pids[mode] = (await sink.pool.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
  }
  let serverCpuKnown = true;
  const serverCpuUs = (pid: number): number => {
    try {
      // utime and stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 per second on Linux);
      // read with cat: Deno lets only --allow-all read /proc/<pid>.
      const out = new Deno.Command("cat", { args: [`/proc/${pid}/stat`], stderr: "null" }).outputSync();
      const f = new TextDecoder().decode(out.stdout).split(") ")[1].split(" ");
      const us = (Number(f[11]) + Number(f[12])) * 10_000;
      if (!out.success || !Number.isFinite(us)) throw new Error("unreadable");
      return us;
    } catch {
      serverCpuKnown = false;
      return 0;
    }
  };
  let next = 0;
  for (let round = 0; next < N; round++) {
    const mode = round % 2 === 0 ? "named" : "unnamed";
    const sink = sinks[mode];
    const slice = records.slice(next, next + ROUND);
    next += ROUND;
    const cpu = process.cpuUsage();
    const server = serverCpuUs(pids[mode]);
    const start = performance.now();
    for (let i = 0; i < slice.length; i += WRITE_ROWS) {
      await sink.writeBatches([slice.slice(i, i + WRITE_ROWS)]);
    }
    const used = process.cpuUsage(cpu);
    totals[mode].wall += (performance.now() - start) * 1000;
    totals[mode].cpu += used.user + used.system;
    totals[mode].server += serverCpuUs(pids[mode]) - server;
    totals[mode].rows += slice.length;
  }
  for (const sink of Object.values(sinks)) await sink.close();
  for (const [mode, t] of Object.entries(totals)) {
    console.log(
      `${mode.padEnd(7)} statements: ${(t.cpu / t.rows).toFixed(1)} µs of masq's CPU per row written, ` +
        (serverCpuKnown ? `${(t.server / t.rows).toFixed(1)} µs of the server process's CPU, ` : "") +
        `${(t.wall / t.rows).toFixed(1)} µs wall per row, ${WRITE_ROWS} rows per statement, ${t.rows} rows`,
    );
  }
} finally {
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  for (const role of ["writer", "analyst", "privacy_officer"]) {
    await admin.query(`DROP ROLE IF EXISTS ${schema}_${role}`);
  }
  await admin.end();
}
