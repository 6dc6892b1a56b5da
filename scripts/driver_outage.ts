/**
 * Measures how two PostgreSQL drivers for Deno behave when the server stops mid-write:
 * node-postgres (npm:pg@8.23.1, a pg.Pool with an 'error' listener, as lib/sink/postgres.ts has) and
 * postgres.js (npm:postgres@3.4.9, `postgres(url, { max: 8 })`).
 *
 * For each driver, in a child process of its own (so a crash is observed, not fatal to the harness): create a
 * table, run 8 concurrent workers that each loop a one-statement transaction inserting 10 rows via unnest, for
 * 14 s; at t=4 s the harness stops the server (`pg_ctl stop -m fast`), at t=8 s starts it again. Workers catch
 * errors, sleep 100-200 ms and retry. Then the driver's close (`pool.end()` / `sql.end({ timeout: 5 })`) runs
 * under a 10 s watchdog. Reported per run: committed transactions (counted in the table afterwards with psql),
 * acknowledged ones, errors by kind, whether the child crashed (exit code, uncaught exception text), whether
 * close hung. The server is a throwaway PostgreSQL 15 cluster (trust auth, 127.0.0.1, a free port, never 5432)
 * owned by the `postgres` user in a temp dir; it is stopped and the dir removed at the end.
 *
 * Run as root from the repository root:
 *   deno run --allow-run --allow-net --allow-read --allow-write --allow-env --allow-sys \
 *     scripts/driver_outage.ts [--runs 2] [--drivers pg,postgres] [--keep-reports DIR]
 * (postgres.js is mapped in deno.json only for this measurement; masq itself uses pg.) The extra driver name
 * `pg-bare` is node-postgres without the pool 'error' listener. Child mode, spawned by the harness:
 *   scripts/driver_outage.ts --driver pg|pg-bare|postgres --port N --table NAME --out FILE
 */
import pg from "pg";
import postgres from "postgres";

const PG_BIN = "/usr/lib/postgresql/15/bin";
const SHARED_PORT = 5432;
const WORKERS = 8;
const ROWS_PER_TX = 10;
const RUN_MS = 14_000;
const STOP_AT_MS = 4_000;
const START_AT_MS = 8_000;
const DRAIN_MS = 5_000; // how long workers get after the 14 s to finish a statement still in flight
const CLOSE_WATCHDOG_MS = 10_000;
const CHILD_LIMIT_MS = RUN_MS + DRAIN_MS + CLOSE_WATCHDOG_MS + 20_000;
const DRIVERS = ["pg", "pg-bare", "postgres"] as const;
type DriverName = typeof DRIVERS[number];

/** One attempted transaction; s and e are ms since the child's t0. */
interface Attempt {
  tx: string;
  s: number;
  e: number;
  ok: boolean;
  kind?: string;
}

interface ChildReport {
  driver: DriverName;
  t0: number;
  attempts: Attempt[];
  inFlight: { tx: string; s: number }[];
  outOfBand: Record<string, number>; // errors no caller saw, e.g. pool 'error' events
  stuckWorkers: number | null;
  close: { outcome: "ok" | "error" | "hung"; ms: number; error?: string } | null;
  fatal?: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** A short, stable description of an error: its code and its message with numbers (ports, pids) masked. */
function kindOf(err: unknown): string {
  const first = err instanceof AggregateError && err.errors.length > 0 && !err.message ? err.errors[0] : err;
  const o = (first ?? {}) as { code?: unknown; message?: unknown };
  const code = typeof o.code === "string" ? o.code : undefined;
  const msg = String(o.message ?? first).replace(/\d+/g, "N").replace(/\s+/g, " ").trim().slice(0, 90);
  return code ? `${code}: ${msg}` : msg;
}

// ---------------------------------------------------------------------------------------------------------------
// Child: one driver against the server, reporting to a JSON file.

interface Driver {
  setup(): Promise<void>;
  insert(tx: string, ids: number[], payloads: string[]): Promise<void>;
  close(): Promise<void>;
}

function makeDriver(
  name: DriverName,
  url: string,
  table: string,
  outOfBand: Record<string, number>,
): Driver {
  const ddl = `CREATE TABLE ${table} (tx text NOT NULL, i int NOT NULL, payload text NOT NULL, ` +
    `at timestamptz NOT NULL DEFAULT clock_timestamp())`;
  if (name === "postgres") {
    const sql = postgres(url, { max: WORKERS });
    return {
      setup: async () => {
        await sql.unsafe(ddl);
      },
      insert: async (tx, ids, payloads) => {
        await sql`INSERT INTO ${sql(table)} (tx, i, payload)
          SELECT ${tx}, u.i, u.p FROM unnest(${ids}::int[], ${payloads}::text[]) AS u(i, p)`;
      },
      close: () => sql.end({ timeout: 5 }),
    };
  }
  const pool = new pg.Pool({ connectionString: url, max: WORKERS });
  if (name === "pg") {
    pool.on("error", (err: Error) => bump(outOfBand, `pool 'error' event: ${kindOf(err)}`));
  }
  const text = `INSERT INTO ${table} (tx, i, payload) ` +
    `SELECT $1, u.i, u.p FROM unnest($2::int[], $3::text[]) AS u(i, p)`;
  return {
    setup: async () => {
      await pool.query(ddl);
    },
    insert: async (tx, ids, payloads) => {
      await pool.query(text, [tx, ids, payloads]);
    },
    close: () => pool.end(),
  };
}

async function child(args: string[]): Promise<void> {
  const driver = flag(args, "--driver") as DriverName;
  const port = Number(flag(args, "--port"));
  const table = flag(args, "--table") ?? "";
  const out = flag(args, "--out") ?? "";
  if (
    !DRIVERS.includes(driver) || !Number.isInteger(port) || port === SHARED_PORT || !/^\w+$/.test(table) ||
    !out
  ) {
    throw new Error(`bad child arguments: ${args.join(" ")}`);
  }
  const report: ChildReport = {
    driver,
    t0: 0,
    attempts: [],
    inFlight: [],
    outOfBand: {},
    stuckWorkers: null,
    close: null,
  };
  const inFlight = new Map<string, number>();
  const dump = () => {
    report.inFlight = [...inFlight].map(([tx, s]) => ({ tx, s }));
    Deno.writeTextFileSync(out, JSON.stringify(report));
  };
  // Record a crash in the report too; not calling preventDefault() lets the process die as it would.
  globalThis.addEventListener("error", (e) => {
    report.fatal = `uncaught: ${kindOf(e.error)}`;
    dump();
  });
  globalThis.addEventListener("unhandledrejection", (e) => {
    report.fatal = `unhandled rejection: ${kindOf(e.reason)}`;
    dump();
  });

  const d = makeDriver(driver, `postgres://postgres@127.0.0.1:${port}/postgres`, table, report.outOfBand);
  await d.setup();
  const t0 = Date.now();
  report.t0 = t0;
  const deadline = t0 + RUN_MS;
  console.log(`READY ${t0}`);

  let running = WORKERS;
  const worker = async (w: number) => {
    for (let seq = 0; Date.now() < deadline; seq++) {
      const tx = `${w}-${seq}`;
      const ids = Array.from({ length: ROWS_PER_TX }, (_, i) => i);
      const payloads = ids.map((i) => `w${w} s${seq} r${i}`);
      const s = Date.now() - t0;
      inFlight.set(tx, s);
      try {
        await d.insert(tx, ids, payloads);
        report.attempts.push({ tx, s, e: Date.now() - t0, ok: true });
      } catch (err) {
        report.attempts.push({ tx, s, e: Date.now() - t0, ok: false, kind: kindOf(err) });
        await sleep(100 + Math.random() * 100);
      } finally {
        inFlight.delete(tx);
      }
    }
  };
  const workers = Array.from({ length: WORKERS }, (_, w) => worker(w).finally(() => running--));
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all(workers),
    new Promise<void>((resolve) => drainTimer = setTimeout(resolve, deadline + DRAIN_MS - Date.now())),
  ]);
  clearTimeout(drainTimer);
  report.stuckWorkers = running;

  const closeStart = Date.now();
  let watchdog: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    d.close().then(
      () => ({ outcome: "ok" as const }),
      (err) => ({ outcome: "error" as const, error: kindOf(err) }),
    ),
    new Promise<{ outcome: "hung" }>((resolve) =>
      watchdog = setTimeout(() => resolve({ outcome: "hung" }), CLOSE_WATCHDOG_MS)
    ),
  ]);
  clearTimeout(watchdog);
  report.close = { ...outcome, ms: Date.now() - closeStart };
  dump();
  Deno.exit(0); // a hung close may leave sockets or timers that would keep the process alive
}

// ---------------------------------------------------------------------------------------------------------------
// Harness: the throwaway cluster, one child per driver and run, and the report.

async function exec(
  cmd: string,
  args: string[],
  cwd?: string,
): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(cmd, { args, cwd, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

async function must(cmd: string, args: string[], cwd?: string): Promise<string> {
  const r = await exec(cmd, args, cwd);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${r.err || r.out}`);
  return r.out;
}

function freePort(): number {
  for (let i = 0; i < 20; i++) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    if (port !== SHARED_PORT) return port;
  }
  throw new Error("no free port");
}

class Cluster {
  readonly data: string;
  constructor(readonly dir: string, readonly port: number) {
    if (port === SHARED_PORT) throw new Error("refusing to use the shared server's port");
    this.data = `${dir}/data`;
  }
  private asPostgres(tool: string, args: string[]) {
    return must("runuser", ["-u", "postgres", "--", `${PG_BIN}/${tool}`, ...args], this.dir);
  }
  async init(): Promise<void> {
    await this.asPostgres("initdb", [
      "-D",
      this.data,
      "--auth=trust",
      "--username=postgres",
      "--no-sync",
      "-E",
      "UTF8",
    ]);
    await Deno.writeTextFile(
      `${this.data}/postgresql.conf`,
      `\nport = ${this.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${this.dir}'\n`,
      { append: true },
    );
  }
  async running(): Promise<boolean> {
    const r = await exec(
      "runuser",
      ["-u", "postgres", "--", `${PG_BIN}/pg_ctl`, "-D", this.data, "status"],
      this.dir,
    );
    return r.code === 0;
  }
  start(): Promise<string> {
    return this.asPostgres("pg_ctl", [
      "-D",
      this.data,
      "-l",
      `${this.dir}/server.log`,
      "-w",
      "-t",
      "60",
      "start",
    ]);
  }
  stop(mode: "fast" | "immediate" = "fast"): Promise<string> {
    return this.asPostgres("pg_ctl", ["-D", this.data, "-m", mode, "-w", "-t", "60", "stop"]);
  }
  psql(sql: string): Promise<{ code: number; out: string; err: string }> {
    const args = ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(this.port)];
    return exec("psql", [...args, "-U", "postgres", "-d", "postgres", "-c", sql]);
  }
}

interface RunResult {
  run: number;
  driver: DriverName;
  exitCode: number | null;
  signal: string | null;
  killedByHarness: boolean;
  crashed: boolean;
  crashText: string;
  stopMs: [number, number] | null; // harness: stop begun, stop done (ms since t0)
  startMs: [number, number] | null;
  committedTx: number | null;
  rows: number | null;
  partialTx: number | null;
  report: ChildReport | null;
  acked: number | null;
  ackedButMissing: number | null; // acknowledged commits not in the table: lost writes
  failedButCommitted: number | null; // the caller saw an error, yet the transaction is in the table
  inFlightCommitted: number | null; // still unanswered at the end, yet in the table
  errorsByKind: Record<string, number>;
  errorsByPhase: { before: number; outage: number; after: number };
  firstCommitAfterStartMs: number | null; // from the server being up again to the first acknowledged commit
  txPerSecBeforeStop: number | null;
  ackedAfterStart: number | null; // acknowledged commits issued after the server was up again, within the 14 s
  slowStatements: number | null; // statements that took over 1 s to be answered (either way)
  longest: Attempt | null; // the statement that took longest to be answered
  closeHung: boolean | null;
}

async function runChild(
  cluster: Cluster,
  outDir: string,
  driver: DriverName,
  run: number,
): Promise<RunResult> {
  const table = `outage_${driver.replace("-", "_")}_${run}`;
  const out = `${outDir}/${table}.json`;
  const script = new URL(import.meta.url).pathname;
  const proc = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      script,
      ...["--driver", driver, "--port", String(cluster.port), "--table", table, "--out", out],
    ],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  const status = proc.status.finally(() => exited = true);
  let resolveReady: (t0: number) => void = () => {};
  const ready = new Promise<number>((resolve) => resolveReady = resolve);
  const stdout = (async () => {
    let buf = "";
    for await (const chunk of proc.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^READY (\d+)$/.exec(line);
        if (m) resolveReady(Number(m[1]));
      }
    }
  })();
  const stderr = (async () => {
    let text = "";
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
    return text;
  })();

  let stopMs: [number, number] | null = null;
  let startMs: [number, number] | null = null;
  let killedByHarness = false;
  const limit = setTimeout(() => {
    if (!exited) {
      killedByHarness = true;
      proc.kill("SIGKILL");
    }
  }, CHILD_LIMIT_MS);
  try {
    const t0 = await Promise.race([ready, status.then(() => null)]);
    if (t0 !== null) {
      await sleep(t0 + STOP_AT_MS - Date.now());
      const a = Date.now() - t0;
      await cluster.stop("fast");
      stopMs = [a, Date.now() - t0];
      await sleep(t0 + START_AT_MS - Date.now());
      const b = Date.now() - t0;
      await cluster.start();
      startMs = [b, Date.now() - t0];
    }
    await status;
  } finally {
    clearTimeout(limit);
    if (!exited) proc.kill("SIGKILL");
  }
  const st = await status;
  await stdout;
  const errText = await stderr;
  await Deno.writeTextFile(`${outDir}/${table}.stderr.txt`, errText);
  if (!(await cluster.running())) await cluster.start();

  let report: ChildReport | null = null;
  try {
    report = JSON.parse(await Deno.readTextFile(out));
  } catch { /* no report: the child died before writing one */ }

  // What is in the table: transactions and rows per transaction.
  const perTx = new Map<string, number>();
  const q = await cluster.psql(`SELECT tx, count(*) FROM ${table} GROUP BY tx`);
  if (q.code === 0) {
    for (const line of q.out.split("\n").filter(Boolean)) {
      const [tx, n] = line.split("|");
      perTx.set(tx, Number(n));
    }
  }
  const inTable = q.code === 0;
  const uncaught = errText.split("\n").filter((l) => /Uncaught|panicked|error:/i.test(l)).slice(0, 3).join(
    " | ",
  );
  const crashed = st.code !== 0 || st.signal !== null || report?.fatal !== undefined;

  const r: RunResult = {
    run,
    driver,
    exitCode: st.code,
    signal: st.signal,
    killedByHarness,
    crashed,
    crashText: crashed
      ? [uncaught || errText.trim().slice(-300), report?.fatal && `(child's own record: ${report.fatal})`]
        .filter(Boolean).join(" ")
      : "",
    stopMs,
    startMs,
    committedTx: inTable ? perTx.size : null,
    rows: inTable ? [...perTx.values()].reduce((a, b) => a + b, 0) : null,
    partialTx: inTable ? [...perTx.values()].filter((n) => n !== ROWS_PER_TX).length : null,
    report,
    acked: null,
    ackedButMissing: null,
    failedButCommitted: null,
    inFlightCommitted: null,
    errorsByKind: {},
    errorsByPhase: { before: 0, outage: 0, after: 0 },
    firstCommitAfterStartMs: null,
    txPerSecBeforeStop: null,
    ackedAfterStart: null,
    slowStatements: null,
    longest: null,
    closeHung: report?.close ? report.close.outcome === "hung" : null,
  };
  if (report) {
    const ok = report.attempts.filter((a) => a.ok);
    const failed = report.attempts.filter((a) => !a.ok);
    r.acked = ok.length;
    if (inTable) {
      r.ackedButMissing = ok.filter((a) => !perTx.has(a.tx)).length;
      r.failedButCommitted = failed.filter((a) => perTx.has(a.tx)).length;
      r.inFlightCommitted = report.inFlight.filter((a) => perTx.has(a.tx)).length;
    }
    for (const a of failed) {
      bump(r.errorsByKind, a.kind ?? "?");
      if (stopMs && a.e < stopMs[0]) r.errorsByPhase.before++;
      else if (startMs && a.e > startMs[1]) r.errorsByPhase.after++;
      else r.errorsByPhase.outage++;
    }
    for (const [k, n] of Object.entries(report.outOfBand)) r.errorsByKind[k] = (r.errorsByKind[k] ?? 0) + n;
    if (startMs) {
      const after = ok.filter((a) => a.s >= startMs[1]).map((a) => a.e);
      if (after.length) r.firstCommitAfterStartMs = Math.min(...after) - startMs[1];
      r.ackedAfterStart = ok.filter((a) => a.s >= startMs[1] && a.e <= RUN_MS).length;
    }
    if (stopMs) {
      r.txPerSecBeforeStop = Math.round(ok.filter((a) => a.e < stopMs[0]).length / (stopMs[0] / 1000));
    }
    r.slowStatements = report.attempts.filter((a) => a.e - a.s > 1000).length;
    for (const a of report.attempts) if (!r.longest || a.e - a.s > r.longest.e - r.longest.s) r.longest = a;
  }
  return r;
}

function printRun(r: RunResult): void {
  const rep = r.report;
  console.log(`\n=== run ${r.run}, driver ${r.driver} ===`);
  console.log(
    `  child: exit code ${r.exitCode}${r.signal ? `, signal ${r.signal}` : ""}` +
      `${r.killedByHarness ? " (killed by the harness after " + CHILD_LIMIT_MS + " ms)" : ""}` +
      `${r.crashed ? `; CRASHED: ${r.crashText}` : ""}`,
  );
  console.log(
    `  server: stop ${JSON.stringify(r.stopMs)} ms, start ${JSON.stringify(r.startMs)} ms (since t0)`,
  );
  console.log(
    `  table: ${r.committedTx} committed tx, ${r.rows} rows, ${r.partialTx} partial tx; ` +
      `acknowledged ${r.acked}, acknowledged but missing ${r.ackedButMissing}, ` +
      `error seen but committed ${r.failedButCommitted}, unanswered at end but committed ${r.inFlightCommitted}`,
  );
  if (rep) {
    console.log(
      `  attempts ${rep.attempts.length}; errors before stop/outage/after restart: ` +
        `${r.errorsByPhase.before}/${r.errorsByPhase.outage}/${r.errorsByPhase.after}; ` +
        `first commit ${r.firstCommitAfterStartMs} ms after the server was up; ` +
        `workers stuck 5 s after the end: ${rep.stuckWorkers}; unanswered statements: ${rep.inFlight.length}`,
    );
    const l = r.longest;
    console.log(
      `  ${r.txPerSecBeforeStop} tx/s before the stop; ${r.ackedAfterStart} tx acknowledged after the restart ` +
        `(by t=14 s); ${r.slowStatements} statements took over 1 s; longest: ` +
        (l
          ? `${l.tx} sent at ${l.s} ms, answered at ${l.e} ms, ${l.ok ? "committed" : `failed: ${l.kind}`}`
          : "-"),
    );
    console.log(
      `  close: ${
        rep.close
          ? `${rep.close.outcome} in ${rep.close.ms} ms${rep.close.error ? ` (${rep.close.error})` : ""}`
          : "not reached"
      }`,
    );
  }
  for (const [k, n] of Object.entries(r.errorsByKind).sort((a, b) => b[1] - a[1])) {
    console.log(`    ${n} × ${k}`);
  }
}

function printTable(results: RunResult[]): void {
  const yn = (b: boolean | null) => b === null ? "n/a" : b ? "YES" : "no";
  console.log(
    "\n| run | driver | committed tx (acked) | crashed? | close hung? | first commit after restart " +
      "| longest statement | errors |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const r of results) {
    const errs = Object.entries(r.errorsByKind).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n}× ${k}`)
      .join("; ");
    const crash = r.crashed
      ? `YES (exit ${r.exitCode}${r.signal ? ` ${r.signal}` : ""}: ${r.crashText})`
      : "no";
    console.log(
      `| ${r.run} | ${r.driver} | ${r.committedTx} (${r.acked ?? "?"}) | ${crash} | ${yn(r.closeHung)} | ` +
        `${r.firstCommitAfterStartMs ?? "-"} ms | ${r.longest ? r.longest.e - r.longest.s : "-"} ms | ${
          errs || "-"
        } |`,
    );
  }
}

async function harness(args: string[]): Promise<void> {
  if (Deno.uid() !== 0) {
    throw new Error("run as root: the cluster is created as the postgres user with runuser");
  }
  const runs = Number(flag(args, "--runs") ?? 2);
  const keep = flag(args, "--keep-reports");
  const drivers = (flag(args, "--drivers") ?? "pg,postgres").split(",") as DriverName[];
  for (const d of drivers) if (!DRIVERS.includes(d)) throw new Error(`unknown driver ${d}`);

  const passwd = (await Deno.readTextFile("/etc/passwd")).split("\n").find((l) => l.startsWith("postgres:"));
  if (!passwd) throw new Error("no postgres user");
  const [, , uid, gid] = passwd.split(":");
  const dir = await Deno.makeTempDir({ prefix: "driver_outage_" });
  const outDir = await Deno.makeTempDir({ prefix: "driver_outage_reports_" });
  let cluster: Cluster | null = null;
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    try {
      if (cluster && (await cluster.running())) await cluster.stop("fast");
    } catch (err) {
      console.error(`stopping the cluster failed (${kindOf(err)}); trying immediate`);
      await cluster?.stop("immediate").catch(() => {});
    }
    await Deno.remove(dir, { recursive: true });
    if (keep) {
      await Deno.mkdir(keep, { recursive: true });
      for await (const f of Deno.readDir(outDir)) {
        await Deno.copyFile(`${outDir}/${f.name}`, `${keep}/${f.name}`);
      }
    }
    await Deno.remove(outDir, { recursive: true });
    console.log(`\ncluster stopped; removed ${dir} and ${outDir}`);
  };
  const onSignal = () => void cleanup().finally(() => Deno.exit(130));
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await Deno.chown(dir, Number(uid), Number(gid));
    await Deno.chmod(dir, 0o700);
    cluster = new Cluster(dir, freePort());
    await cluster.init();
    await cluster.start();
    const version = (await cluster.psql("SHOW server_version")).out.trim();
    console.log(
      `throwaway cluster: PostgreSQL ${version} at 127.0.0.1:${cluster.port}, data in ${cluster.data}`,
    );
    console.log(`Deno ${Deno.version.deno}; drivers ${drivers.join(", ")}; ${runs} run(s) each`);
    const results: RunResult[] = [];
    for (let run = 1; run <= runs; run++) {
      for (const driver of drivers) {
        const r = await runChild(cluster, outDir, driver, run);
        printRun(r);
        results.push(r);
      }
    }
    printTable(results);
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await cleanup();
  }
}

if (import.meta.main) {
  const args = Deno.args;
  if (args.includes("--driver")) await child(args);
  else await harness(args);
}
