/**
 * The benchmark (`deno task bench`, bench/main.ts): what masq costs on top of the SQS round trips any
 * consumer must make, measured fairly.
 *
 * The SQS emulator runs in a process of its own (bench/sqs_server.ts), seeded in-process with N realistic
 * messages (bench/synthetic.ts `realistic()`: ~1% bad). Every consumer measured runs in processes of its
 * own, so that CPU time and peak RSS are its own: the ceiling (bench/ceiling_child.ts, the bare
 * receive+delete loop with the same SDK client, at its best concurrency) and masq (bench/masq_child.ts,
 * what `runMasq()` does at its default settings, with the permissions of `deno task start`) into a fresh
 * schema of PostgreSQL (BENCH_DATABASE_URL; embedded PGlite when unset). Rounds alternate ceiling and masq
 * on the same messages, so that both see the same machine; ratios are taken per round and their median
 * reported. After each masq round the row counts must be exact.
 *
 * @module
 */
import pg from "pg";
import denoConfig from "../deno.json" with { type: "json" };
import { expandedTask } from "../scripts/permissions.ts";
import { configFromFlags } from "../lib/config.ts";
import { redactUrl } from "../lib/secrets.ts";
import { startEmbeddedPostgres } from "../lib/embedded.ts";
import { ConfigError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import type { Ablation } from "./ablation.ts";
import { type Child, spawnScript } from "./child.ts";
import type { CeilingSettings } from "./ceiling_child.ts";
import type { MasqSettings } from "./masq_child.ts";
import type { ConsumerReport } from "./measure.ts";
import type { MachineUsage } from "./machine.ts";
import { heapProfilePath, type saveProfile } from "./profile.ts";
import { median, percentile, round } from "./stats.ts";
import { dropRoles, migrate } from "../lib/sink/schema.ts";
import { inFlightBound } from "../lib/pipeline.ts";

export type BenchMode = "compare" | "memory" | "profile";

export interface BenchOptions {
  log: Logger;
  /** Human-readable lines (stderr). */
  print: (line: string) => void;
  env: (name: string) => string | undefined;
  /** Messages per run (default 50,000; in memory mode the small size, the large being ten times it). */
  messages?: number;
  /** Ceiling/masq round pairs (default 3). */
  rounds?: number;
  /** Consumer processes on the one queue, for masq and the ceiling alike (default 1). */
  processes?: number;
  /** compare (default): the rounds; memory: peak RSS at N and 10 N; profile: one CPU profile of each. */
  mode?: BenchMode;
  /** Where profile mode writes masq.cpuprofile and ceiling.cpuprofile. */
  profileDir?: string;
  /** Ceiling concurrencies to try per process (default 8, 16, 32); the best is used. */
  concurrencies?: readonly number[];
  /** Share of bad messages (default 0.01). */
  badRate?: number;
  /** How masq keeps originals: not at all (default), under a symmetric vault key, or sealed (docs/vault.md). */
  vault?: BenchVault;
  /**
   * Compare mode: parts to take out of masq, in order (bench/ablation.ts); each round then also
   * measures masq without the first, without the first two, and so on.
   */
  ablate?: readonly Ablation[];
}

/** The figures of one run of one consumer (all its processes together). */
export interface RunFigures {
  messages: number;
  seconds: number;
  /** Messages per second, from "go" to the last delete of any process. */
  rate: number;
  /** Process CPU time of all the consumer's processes per message, µs. */
  cpu_us_per_msg: number;
  /**
   * JavaScript heap allocated per message, KiB (garbage included): what the garbage collector's share of
   * the CPU grows with. Null when a runtime does not count it.
   */
  alloc_kib_per_msg: number | null;
  /** Receive-to-delete time per message, ms (null when the consumer did not report it). */
  p50_ms: number | null;
  p99_ms: number | null;
  /** Largest peak RSS of any of the consumer's processes, MiB. */
  peak_rss_mib: number;
  /** The SQS emulator's CPU per message over the run, µs (bench/machine.ts); null when not measured. */
  emulator_cpu_us_per_msg: number | null;
  /**
   * The rest of the machine's busy CPU per message over the run, µs: every process but the consumer and
   * the emulator (PostgreSQL, mostly, when it runs here). Null where the CPU times cannot be read.
   */
  rest_cpu_us_per_msg: number | null;
  /** Cores busy on the whole machine over the run, on average (null where the CPU times cannot be read). */
  machine_cores: number | null;
  /** "last delete", or "run returned" when masq did not report its deletes (the drain wait included). */
  end: string;
}

const READY_TIMEOUT_MS = 60_000;
const ROOT = new URL("../", import.meta.url);
const SCRIPTS = {
  server: new URL("sqs_server.ts", import.meta.url),
  ceiling: new URL("ceiling_child.ts", import.meta.url),
  masq: new URL("masq_child.ts", import.meta.url),
};
/** The issue's targets, as ratios masq / ceiling. */
export const TARGETS = { rate: 0.9, cpu: 1.15, rss: 1.25 } as const;

/** Generous: a run slower than 300 msg/s is broken, not slow. */
function runTimeoutMs(n: number): number {
  return 120_000 + n * 3.4;
}

/**
 * The permissions masq runs with in production (the `masq` task of deno.json, else `start`), so that the
 * bench runs masq exactly as users do.
 */
export function startTaskPermissions(home: string | undefined): string[] {
  const perms = ["masq", "start"].map((name) => expandedTask(denoConfig, name).split(/\s+/))
    .map((words) => words.filter((a) => a.startsWith("--allow-")))
    .find((p) => p.length > 0);
  if (perms === undefined) throw new Error("deno.json has no masq or start task with --allow-* permissions");
  return perms.map((p) =>
    home === undefined
      ? p.split(",").filter((part) => !part.includes("$HOME")).join(",")
      : p.replaceAll("$HOME", home)
  );
}

/** The SQS emulator's process. */
interface SqsServer {
  endpoint: string;
  queueUrl(name: string): string;
  seed(queue: string, n: number, seed: number, badRate: number): Promise<{ good: number; bad: number }>;
  drop(queue: string): Promise<void>;
  /** The machine's and the emulator's CPU over a window of epoch ms (null for a window outside the samples). */
  usage(from: number, to: number): Promise<MachineUsage | null>;
  stop(): Promise<void>;
}

async function startSqsServer(): Promise<SqsServer> {
  const child = spawnScript(
    SCRIPTS.server,
    [
      "--allow-net=127.0.0.1,0.0.0.0",
      "--allow-env=FAUXQS_PORT,FAUXQS_HOST,FAUXQS_DEFAULT_REGION,FAUXQS_LOGGER,FAUXQS_INIT",
      // networkInterfaces for fauxqs; cpus for the machine's CPU times (bench/machine.ts).
      "--allow-sys=networkInterfaces,cpus",
    ],
    [],
    { cwd: ROOT.pathname },
  );
  try {
    const { port } = await child.next<{ port: number }>(READY_TIMEOUT_MS);
    const endpoint = `http://127.0.0.1:${port}`;
    const ask = async <T>(req: unknown, timeoutMs: number): Promise<T> => {
      await child.send(req);
      const res = await child.next<{ ok: boolean; error?: string } & T>(timeoutMs);
      if (!res.ok) throw new Error(`SQS emulator: ${res.error}`);
      return res;
    };
    return {
      endpoint,
      queueUrl: (name) => `${endpoint}/000000000000/${name}`,
      seed: (queue, n, seed, badRate) =>
        ask({ op: "seed", queue, n, seed, badRate, attributes: { VisibilityTimeout: "30" } }, 60_000 + n),
      drop: (queue) => ask({ op: "drop", queue }, 30_000),
      usage: async (from, to) =>
        (await ask<{ usage: MachineUsage | null }>({ op: "usage", from, to }, 30_000)).usage,
      stop: async () => void await child.end(5_000),
    };
  } catch (err) {
    await child.kill();
    throw err;
  }
}

/** Counts of what masq wrote into one schema. */
interface Written {
  rows: number;
  rejected: number;
  ledger: number;
}

/** One schema to write into: fresh, migrated, counted after the run, dropped. */
interface Target {
  url: string;
  counts(): Promise<Written>;
  drop(): Promise<void>;
}

/** The database side: real PostgreSQL (a fresh schema per run) or embedded PGlite (emptied per run). */
interface Database {
  kind: "postgresql" | "pglite";
  label: string;
  fresh(): Promise<Target>;
  close(): Promise<void>;
}

async function query<T>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
}

/** `masq migrate` on the database the URL points at, as an operator runs it before `masq run`. */
async function migrateSchema(url: string, rolePrefix?: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await migrate(client, rolePrefix ? { rolePrefix } : {});
  } finally {
    await client.end();
  }
}

const COUNTS_SQL = `SELECT (SELECT count(*) FROM user_logins)::int AS rows,
  (SELECT count(*) FROM user_logins_rejected)::int AS rejected,
  (SELECT count(*) FROM user_logins_ledger)::int AS ledger`;

function withSearchPath(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set("options", `-c search_path=${schema}`);
  return u.toString();
}

async function openDatabase(external: string | undefined): Promise<Database> {
  if (external !== undefined) {
    return {
      kind: "postgresql",
      label: `PostgreSQL ${redactUrl(external)} (BENCH_DATABASE_URL)`,
      async fresh() {
        const schema = `masq_bench_${crypto.randomUUID().slice(0, 8)}`;
        await query(external, `CREATE SCHEMA ${schema}`);
        const url = withSearchPath(external, schema);
        // Roles are cluster-wide: this schema gets its own, dropped with it.
        await migrateSchema(url, `${schema}_`);
        return {
          url,
          counts: async () => (await query<Written>(url, COUNTS_SQL))[0],
          drop: async () => {
            await query(external, `DROP SCHEMA ${schema} CASCADE`);
            const client = new pg.Client({ connectionString: external });
            await client.connect();
            await dropRoles(client, `${schema}_`).finally(() => client.end());
          },
        };
      },
      close: async () => {},
    };
  }
  const embedded = await startEmbeddedPostgres();
  return {
    kind: "pglite",
    label: "embedded PGlite (set BENCH_DATABASE_URL for a real PostgreSQL)",
    async fresh() {
      await migrateSchema(embedded.url);
      await embedded.db.exec("TRUNCATE user_logins, user_logins_rejected, user_logins_ledger, pii_vault");
      return {
        url: embedded.url,
        counts: async () => (await query<Written>(embedded.url, COUNTS_SQL))[0],
        drop: async () => {},
      };
    },
    close: () => embedded.stop(),
  };
}

/** Runs `processes` children of one script on one queue, all started at once, and returns their reports. */
async function consume(
  script: URL,
  permissions: string[],
  childEnv: Record<string, string>,
  settings: CeilingSettings | MasqSettings,
  processes: number,
  n: number,
): Promise<ConsumerReport[]> {
  const children: Child[] = [];
  try {
    for (let i = 0; i < processes; i++) {
      children.push(spawnScript(script, permissions, [], { cwd: ROOT.pathname, env: childEnv }));
    }
    await Promise.all(children.map((c) => c.send(settings)));
    await Promise.all(children.map((c) => c.next(READY_TIMEOUT_MS)));
    await Promise.all(children.map((c) => c.send({ go: true })));
    const reports = await Promise.all(children.map((c) => c.next<ConsumerReport>(runTimeoutMs(n))));
    const statuses = await Promise.all(children.map((c) => c.end()));
    statuses.forEach((s, i) => {
      if (!s.success) {
        throw new Error(`consumer process ${i + 1} exited with code ${s.code}:\n${children[i].stderr()}`);
      }
    });
    return reports;
  } finally {
    await Promise.all(children.map((c) => c.kill()));
  }
}

/** The window of a run: from the first process's "go" to the last delete of any (epoch ms). */
function runWindow(reports: readonly ConsumerReport[]): { start: number; end: number } {
  return {
    start: Math.min(...reports.map((r) => r.startedAt)),
    end: Math.max(...reports.map((r) => r.lastDeleteAt)),
  };
}

/**
 * One consumer's figures from its processes' reports, and the machine's use over the same window when
 * measured: the emulator's CPU per message, and the rest of the machine's (busy CPU less the consumer's
 * and the emulator's).
 */
export function figures(
  reports: readonly ConsumerReport[],
  n: number,
  usage?: MachineUsage | null,
): RunFigures {
  const { start, end } = runWindow(reports);
  const seconds = (end - start) / 1000;
  const cpuUs = reports.reduce((s, r) => s + r.cpuUs, 0);
  const perMsg = (cores: number) => (cores * seconds * 1e6) / n;
  const latencies = reports.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  return {
    messages: n,
    seconds: round(seconds, 3),
    rate: round(n / seconds),
    cpu_us_per_msg: round(cpuUs / n, 1),
    alloc_kib_per_msg: reports.every((r) => typeof r.heapAllocatedBytes === "number")
      ? round(reports.reduce((s, r) => s + (r.heapAllocatedBytes ?? 0), 0) / n / 1024, 1)
      : null,
    p50_ms: p50 === null ? null : round(p50, 1),
    p99_ms: p99 === null ? null : round(p99, 1),
    peak_rss_mib: round(Math.max(...reports.map((r) => r.peakRssKiB)) / 1024, 1),
    emulator_cpu_us_per_msg: usage ? round(perMsg(usage.selfCores), 1) : null,
    rest_cpu_us_per_msg: usage?.machineCores != null
      ? round(perMsg(usage.machineCores - usage.selfCores) - cpuUs / n, 1)
      : null,
    machine_cores: usage?.machineCores != null ? round(usage.machineCores, 2) : null,
    end: reports.some((r) => r.end !== "last delete") ? "run returned" : "last delete",
  };
}

/** A random 32-byte key for this run only, hex: masq refuses short and public keys. */
function runKey(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

const fmt = (x: number | null, digits = 0) =>
  x === null || Number.isNaN(x)
    ? "-"
    : x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

function tableLines(rows: { label: string; consumer: string; f: RunFigures }[]): string[] {
  const head = [
    "",
    "consumer",
    "msg/s",
    "CPU µs/msg",
    "heap KiB/msg",
    "p50 ms",
    "p99 ms",
    "peak RSS MiB",
    "seconds",
    "emulator µs",
    "rest µs",
    "cores",
  ];
  const body = rows.map(({ label, consumer, f }) => [
    label,
    consumer,
    fmt(f.rate),
    fmt(f.cpu_us_per_msg, 1),
    fmt(f.alloc_kib_per_msg, 1),
    fmt(f.p50_ms, 1),
    fmt(f.p99_ms, 1),
    fmt(f.peak_rss_mib, 1),
    fmt(f.seconds, 2),
    fmt(f.emulator_cpu_us_per_msg, 1),
    fmt(f.rest_cpu_us_per_msg, 1),
    fmt(f.machine_cores, 2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(head), ...body.map(line)];
}

/** The context every mode shares: the emulator, the database, permissions and the messages' seed. */
/** `--vault`: how the masq consumer keeps originals. */
export type BenchVault = "none" | "symmetric" | "sealed";

interface Rig {
  vault: BenchVault;
  sqs: SqsServer;
  db: Database;
  permissions: string[];
  /** The consumers' whole environment: HOME only (the SDK looks for its config there). */
  childEnv: Record<string, string>;
  seed: number;
  badRate: number;
  log: Logger;
  print: (line: string) => void;
}

let queueSerial = 0;

function usageOf(rig: Rig, reports: readonly ConsumerReport[]): Promise<MachineUsage | null> {
  const { start, end } = runWindow(reports);
  return rig.sqs.usage(start, end);
}

/** Seeds a fresh queue with n messages and runs one consumer on it. */
async function runOnce(
  rig: Rig,
  consumer: "ceiling" | "masq",
  n: number,
  processes: number,
  opts: { concurrency?: number; profile?: string; ablate?: Ablation[] } = {},
): Promise<{ figures: RunFigures; bad: number; reports: ConsumerReport[] }> {
  const queue = `bench-${consumer}-${++queueSerial}-${crypto.randomUUID().slice(0, 6)}`;
  const seeded = await rig.sqs.seed(queue, n, rig.seed, rig.badRate);
  const queueUrl = rig.sqs.queueUrl(queue);
  const permissions = opts.profile
    ? [
      ...rig.permissions.filter((p) => !p.startsWith("--allow-sys") && !p.startsWith("--allow-write")),
      "--allow-sys",
      `--allow-write=${opts.profile.slice(0, Math.max(1, opts.profile.lastIndexOf("/")))}`,
    ]
    : rig.permissions;
  try {
    if (consumer === "ceiling") {
      const settings: CeilingSettings = {
        queueUrl,
        endpoint: rig.sqs.endpoint,
        concurrency: opts.concurrency ?? 16,
        inFlightBound: inFlightBound(opts.concurrency ?? 16),
        waitSeconds: configFromFlags({ "queue-url": queueUrl }, "x".repeat(32)).waitSeconds,
        ...(opts.profile ? { profile: opts.profile } : {}),
      };
      const reports = await consume(SCRIPTS.ceiling, permissions, rig.childEnv, settings, processes, n);
      const deleted = reports.reduce((s, r) => s + r.messages, 0);
      if (deleted < n) throw new Error(`bench: the ceiling deleted ${deleted} of ${n} messages`);
      return { figures: figures(reports, n, await usageOf(rig, reports)), bad: seeded.bad, reports };
    }
    const target = await rig.db.fresh();
    try {
      const settings: MasqSettings = {
        queueUrl,
        databaseUrl: target.url,
        hmacKey: runKey(),
        ...(rig.vault !== "none" ? { vault: rig.vault } : {}),
        ...(opts.profile ? { profile: opts.profile } : {}),
        ...(opts.ablate?.length ? { ablate: opts.ablate } : {}),
      };
      const reports = await consume(SCRIPTS.masq, permissions, rig.childEnv, settings, processes, n);
      const usage = await usageOf(rig, reports);
      const c = await target.counts();
      // Without the sink nothing is written; without the transform every message is one fixed row.
      const expected = opts.ablate?.includes("sink")
        ? { rows: 0, rejected: 0, ledger: 0 }
        : opts.ablate?.includes("transform")
        ? { rows: n, rejected: 0, ledger: n }
        : { rows: seeded.good, rejected: seeded.bad, ledger: n };
      if (c.rows !== expected.rows || c.rejected !== expected.rejected || c.ledger !== expected.ledger) {
        throw new Error(
          `bench: masq${
            opts.ablate?.length ? ` without ${opts.ablate.join(" and ")}` : ""
          } wrote ${c.rows} rows, ` +
            `${c.rejected} rejections and ${c.ledger} ledger entries; expected exactly ${expected.rows}, ` +
            `${expected.rejected} and ${expected.ledger}`,
        );
      }
      const deleted = reports.reduce((s, r) => s + r.messages, 0);
      if (deleted < n) throw new Error(`bench: masq deleted ${deleted} of ${n} messages`);
      return { figures: figures(reports, n, usage), bad: seeded.bad, reports };
    } finally {
      await target.drop();
    }
  } finally {
    await rig.sqs.drop(queue);
  }
}

/** The result of `deno task bench` (compare mode), printed as one JSON line. */
export interface CompareResult {
  mode: "compare";
  messages: number;
  bad: number;
  rounds: number;
  processes: number;
  database: "postgresql" | "pglite";
  ceiling: RunFigures & { concurrency: number; calibration: Record<string, number> };
  masq: RunFigures;
  /** Medians of the per-round ratios masq / ceiling. */
  ratio: { rate: number; cpu: number; rss: number };
  targets: typeof TARGETS;
  per_round: { ceiling: RunFigures; masq: RunFigures; ablated?: RunFigures[] }[];
  /**
   * The machine's side (when its CPU times can be read): the median over rounds of rateBound(), and of what
   * the rest of the machine spent more per message while masq ran than while the ceiling did, µs.
   */
  machine?: { rate_bound: number; rest_extra_us_per_msg: number };
  /** With `ablate`: masq without the first part, the first two, ...; medians, and ratios to the ceiling. */
  ablations?: { without: Ablation[]; masq: RunFigures; ratio: { rate: number; cpu: number; rss: number } }[];
}

const roundOrNull = (x: number | null, digits: number) => (x === null ? null : round(x, digits));

function medianFigures(runs: readonly RunFigures[]): RunFigures {
  const m = (f: (r: RunFigures) => number | null) => {
    const xs = runs.map(f).filter((x): x is number => x !== null);
    return xs.length ? median(xs) : null;
  };
  return {
    messages: runs[0].messages,
    seconds: round(m((r) => r.seconds)!, 3),
    rate: round(m((r) => r.rate)!),
    cpu_us_per_msg: round(m((r) => r.cpu_us_per_msg)!, 1),
    alloc_kib_per_msg: roundOrNull(m((r) => r.alloc_kib_per_msg), 1),
    p50_ms: roundOrNull(m((r) => r.p50_ms), 1),
    p99_ms: roundOrNull(m((r) => r.p99_ms), 1),
    peak_rss_mib: round(m((r) => r.peak_rss_mib)!, 1),
    emulator_cpu_us_per_msg: roundOrNull(m((r) => r.emulator_cpu_us_per_msg), 1),
    rest_cpu_us_per_msg: roundOrNull(m((r) => r.rest_cpu_us_per_msg), 1),
    machine_cores: roundOrNull(m((r) => r.machine_cores), 2),
    end: runs.some((r) => r.end !== "last delete") ? "run returned" : "last delete",
  };
}

/**
 * The most masq / ceiling msg/s a CPU-bound machine allows when masq's own CPU per message equals the
 * ceiling's, from one round's figures: the ceiling's whole-machine CPU per message (its own, the
 * emulator's, the rest's) against the same plus what the rest of the machine spent more per message while
 * masq ran (PostgreSQL writing its rows, when it runs here). At equal use of the cores, msg/s go as the
 * inverse of the machine's CPU per message. Null without the machine's figures.
 * So a ceiling at 100 + 50 + 0 µs and a rest of 30 µs while masq ran give 150 / 180 = 0.833.
 */
export function rateBound(ceiling: RunFigures, masq: RunFigures): number | null {
  const e = ceiling.emulator_cpu_us_per_msg;
  const rc = ceiling.rest_cpu_us_per_msg;
  const rm = masq.rest_cpu_us_per_msg;
  if (e === null || rc === null || rm === null) return null;
  const machine = ceiling.cpu_us_per_msg + e + rc;
  return machine / (machine + Math.max(0, rm - rc));
}

/** Medians of the per-round ratios of some masq figures to the same rounds' ceilings. */
function ratios(ceilings: readonly RunFigures[], runs: readonly RunFigures[]) {
  const of = (f: (r: RunFigures) => number) => round(median(runs.map((r, i) => f(r) / f(ceilings[i]))), 3);
  return { rate: of((r) => r.rate), cpu: of((r) => r.cpu_us_per_msg), rss: of((r) => r.peak_rss_mib) };
}

async function compare(
  rig: Rig,
  n: number,
  rounds: number,
  processes: number,
  concurrencies: readonly number[],
  ablate: readonly Ablation[] = [],
) {
  const { print } = rig;
  const calibration: Record<string, number> = {};
  let best = concurrencies[0];
  let bad = 0;
  for (const c of concurrencies) {
    const run = await runOnce(rig, "ceiling", n, processes, { concurrency: c });
    bad = run.bad;
    calibration[String(c)] = run.figures.rate;
    if (run.figures.rate > calibration[String(best)]) best = c;
  }
  print(
    `ceiling calibration (receivers per process -> msg/s): ${
      concurrencies.map((c) => `${c} -> ${fmt(calibration[String(c)])}`).join(", ")
    }; using ${best}`,
  );
  // Cumulative: without the first part, then without the first two, ...
  const ladder = ablate.map((_, i) => ablate.slice(0, i + 1));
  const ablatedName = (without: readonly Ablation[]) => `masq -${without.join(" -")}`;
  const perRound: { ceiling: RunFigures; masq: RunFigures; ablated?: RunFigures[] }[] = [];
  const rows: { label: string; consumer: string; f: RunFigures }[] = [];
  for (let r = 1; r <= rounds; r++) {
    const ceiling = (await runOnce(rig, "ceiling", n, processes, { concurrency: best })).figures;
    // masq and its ablated runs swap places every other round: whichever runs right after the ceiling
    // meets the server in a different state (see bench/BENCHMARKS.md for what that is worth between two
    // runs of the same code), and that must not read as the cost of a part.
    const ablated: RunFigures[] = [];
    const runAblated = async () => {
      for (const without of ladder) {
        ablated.push((await runOnce(rig, "masq", n, processes, { ablate: without })).figures);
      }
    };
    if (r % 2 === 0) await runAblated();
    const masq = (await runOnce(rig, "masq", n, processes)).figures;
    if (r % 2 === 1) await runAblated();
    perRound.push({ ceiling, masq, ...(ladder.length ? { ablated } : {}) });
    rows.push({ label: `round ${r}`, consumer: "ceiling", f: ceiling }, {
      label: `round ${r}`,
      consumer: "masq",
      f: masq,
    });
    ladder.forEach((without, i) =>
      rows.push({ label: `round ${r}`, consumer: ablatedName(without), f: ablated[i] })
    );
    print(
      `round ${r}: ceiling ${fmt(ceiling.rate)} msg/s, masq ${fmt(masq.rate)} msg/s (${
        fmt(masq.rate / ceiling.rate, 2)
      } of the ceiling)`,
    );
  }
  const ceilings = perRound.map((p) => p.ceiling);
  const ceiling = medianFigures(ceilings);
  const masq = medianFigures(perRound.map((p) => p.masq));
  const ratio = ratios(ceilings, perRound.map((p) => p.masq));
  const ablations = ladder.map((without, i) => {
    const runs = perRound.map((p) => p.ablated![i]);
    return { without, masq: medianFigures(runs), ratio: ratios(ceilings, runs) };
  });
  rows.push({ label: "median", consumer: "ceiling", f: ceiling }, {
    label: "median",
    consumer: "masq",
    f: masq,
  });
  for (const a of ablations) rows.push({ label: "median", consumer: ablatedName(a.without), f: a.masq });
  for (const line of tableLines(rows)) print(line);
  const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
  print(
    `masq / ceiling (median of per-round ratios): msg/s ${fmt(ratio.rate, 2)} (target >= ${TARGETS.rate}: ${
      verdict(ratio.rate >= TARGETS.rate)
    }), CPU/msg ${fmt(ratio.cpu, 2)} (target <= ${TARGETS.cpu}: ${
      verdict(ratio.cpu <= TARGETS.cpu)
    }), peak RSS ${fmt(ratio.rss, 2)} (target <= ${TARGETS.rss}: ${verdict(ratio.rss <= TARGETS.rss)})`,
  );
  const bounds = perRound.map((p) => rateBound(p.ceiling, p.masq));
  const machine = bounds.every((b): b is number => b !== null)
    ? {
      rate_bound: round(median(bounds), 3),
      rest_extra_us_per_msg: round(
        median(perRound.map((p) => p.masq.rest_cpu_us_per_msg! - p.ceiling.rest_cpu_us_per_msg!)),
        1,
      ),
    }
    : undefined;
  if (machine) {
    const whole = (f: RunFigures) =>
      `${fmt(f.cpu_us_per_msg, 1)} + ${fmt(f.emulator_cpu_us_per_msg, 1)} + ${
        fmt(f.rest_cpu_us_per_msg, 1)
      } = ${fmt(f.cpu_us_per_msg + f.emulator_cpu_us_per_msg! + f.rest_cpu_us_per_msg!, 1)} µs at ${
        fmt(f.machine_cores, 2)
      } cores busy`;
    print(
      `the whole machine per message (consumer + emulator + rest; medians): ceiling ${whole(ceiling)}, ` +
        `masq ${whole(masq)}. The rest (PostgreSQL, when it runs here) spent ${
          fmt(machine.rest_extra_us_per_msg, 1)
        } µs more per message while masq ran: even at the ceiling's own CPU per message, masq could reach ` +
        `at most ${fmt(machine.rate_bound, 2)} of its msg/s on this machine at equal use of the cores`,
    );
  }
  for (const a of ablations) {
    print(
      `${ablatedName(a.without)} / ceiling (diagnosis only: parts taken out): msg/s ${
        fmt(a.ratio.rate, 2)
      }, ` +
        `CPU/msg ${fmt(a.ratio.cpu, 2)}, peak RSS ${fmt(a.ratio.rss, 2)}`,
    );
  }
  if (masq.end !== "last delete") {
    print("note: masq reported no delete events, so its end is its return (the drained-queue wait included)");
  }
  const result: CompareResult = {
    mode: "compare",
    messages: n,
    bad,
    rounds,
    processes,
    database: rig.db.kind,
    ceiling: { ...ceiling, concurrency: best, calibration },
    masq,
    ratio,
    targets: TARGETS,
    per_round: perRound,
    ...(machine ? { machine } : {}),
    ...(ablations.length ? { ablations } : {}),
  };
  return result;
}

async function memory(rig: Rig, n: number, processes: number) {
  const sizes = [n, n * 10];
  const rows: { label: string; consumer: string; f: RunFigures }[] = [];
  const peak: Record<string, Record<string, number>> = { ceiling: {}, masq: {} };
  for (const size of sizes) {
    for (const consumer of ["ceiling", "masq"] as const) {
      const f = (await runOnce(rig, consumer, size, processes)).figures;
      rows.push({ label: `${fmt(size)} queued`, consumer, f });
      peak[consumer][String(size)] = f.peak_rss_mib;
      rig.print(
        `${fmt(size)} queued: ${consumer} peak RSS ${fmt(f.peak_rss_mib, 1)} MiB, ${fmt(f.rate)} msg/s`,
      );
    }
  }
  for (const line of tableLines(rows)) rig.print(line);
  const growth = (c: string) => round(peak[c][String(sizes[1])] / peak[c][String(sizes[0])], 3);
  const masqGrowth = growth("masq");
  const ceilingGrowth = growth("ceiling");
  rig.print(
    `peak RSS with ${fmt(sizes[1])} queued / with ${fmt(sizes[0])} queued: masq ${fmt(masqGrowth, 2)}, ` +
      `the bare loop ${
        fmt(ceilingGrowth, 2)
      } (flat: <= 1.10; what both share is the runtime's, not the queue's)`,
  );
  return {
    mode: "memory" as const,
    processes,
    database: rig.db.kind,
    sizes,
    peak_rss_mib: peak,
    masq_growth: masqGrowth,
    ceiling_growth: ceilingGrowth,
  };
}

async function profile(rig: Rig, n: number, dir: string) {
  const out: Record<string, unknown> = { mode: "profile", messages: n, database: rig.db.kind };
  for (const consumer of ["ceiling", "masq"] as const) {
    const path = `${dir.replace(/\/+$/, "")}/${consumer}.cpuprofile`;
    const { figures: f, reports } = await runOnce(rig, consumer, n, 1, { profile: path });
    const s = reports[0].extra?.profile as Awaited<ReturnType<typeof saveProfile>>;
    rig.print(
      `${consumer} (profiled, so slower): ${fmt(f.rate)} msg/s; ${
        fmt(s.busyMs / n * 1000, 1)
      } µs/msg busy on the JavaScript thread; profile: ${path}${
        path.startsWith("/") ? "" : " (in the repository)"
      }`,
    );
    rig.print("  self time by area:");
    for (const a of s.areas.slice(0, 12)) rig.print(`    ${fmt(a.share * 100, 1).padStart(5)}%  ${a.name}`);
    rig.print("  self time by function:");
    for (const x of s.functions) rig.print(`    ${fmt(x.share * 100, 1).padStart(5)}%  ${x.name}`);
    const perMsg = (bytes: number) => `${fmt(bytes / n / 1024, 2).padStart(6)} KiB/msg`;
    const heapPath = heapProfilePath(path);
    rig.print(`  heap allocated (freed since included): ${perMsg(s.heap.bytes)}; profile: ${heapPath}`);
    rig.print("  by area (what the runtime allocates for a caller is charged to it):");
    for (const a of s.heap.areas.slice(0, 12)) rig.print(`    ${perMsg(a.bytes)}  ${a.name}`);
    rig.print("  by function:");
    for (const x of s.heap.functions.slice(0, 15)) rig.print(`    ${perMsg(x.bytes)}  ${x.name}`);
    out[consumer] = {
      ...f,
      profile: path,
      busy_ms: s.busyMs,
      areas: s.areas,
      functions: s.functions,
      heap_profile: heapPath,
      heap_bytes: s.heap.bytes,
      heap_areas: s.heap.areas,
      heap_functions: s.heap.functions,
    };
  }
  return out;
}

/**
 * Runs the benchmark and returns its figures (bench/main.ts prints them as one JSON line).
 *
 * @example
 * ```ts
 * import { runBench } from "./runner.ts";
 * import { silentLogger } from "../lib/log.ts";
 * const result = await runBench({ log: silentLogger, print: console.error, env: Deno.env.get, messages: 20_000 });
 * ```
 */
export async function runBench(opts: BenchOptions): Promise<Record<string, unknown>> {
  const n = opts.messages ?? 50_000;
  const rounds = opts.rounds ?? 3;
  const processes = opts.processes ?? 1;
  const mode = opts.mode ?? "compare";
  const external = opts.env("BENCH_DATABASE_URL") || undefined;
  // masq's default pool is its concurrency (8); the embedded server takes 16 connections.
  if (external === undefined && processes > 2) {
    throw new ConfigError(
      "--processes",
      `${processes} masq processes need BENCH_DATABASE_URL (embedded PGlite serves 2)`,
    );
  }
  const seed = crypto.getRandomValues(new Uint32Array(1))[0];
  const badRate = opts.badRate ?? 0.01;
  const sqs = await startSqsServer();
  let db: Database | undefined;
  try {
    db = await openDatabase(external);
    const rig: Rig = {
      vault: opts.vault ?? "none",
      sqs,
      db,
      permissions: startTaskPermissions(opts.env("HOME")),
      childEnv: opts.env("HOME") ? { HOME: opts.env("HOME")! } : {},
      seed,
      badRate,
      log: opts.log,
      print: opts.print,
    };
    opts.print(
      `masq bench (${mode}): ${fmt(n)} realistic messages (${badRate * 100}% bad) per run, ${
        mode === "compare" ? `${rounds} rounds, ` : ""
      }${processes} process${
        processes > 1 ? "es" : ""
      } per consumer; SQS emulator in its own process; ${db.label}`,
    );
    if (mode === "memory") return await memory(rig, n, processes);
    if (mode === "profile") return await profile(rig, n, opts.profileDir ?? "bench-profile");
    return { ...(await compare(rig, n, rounds, processes, opts.concurrencies ?? [8, 16, 32], opts.ablate)) };
  } finally {
    await db?.close().catch(() => {});
    await sqs.stop();
  }
}
