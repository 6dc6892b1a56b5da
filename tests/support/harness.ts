/**
 * Shared helpers for the integration tests: a PostgreSQL per test (a fresh schema on TEST_DATABASE_URL,
 * else an embedded PGlite), an embedded SQS (fauxqs), and the real masq CLI as a subprocess.
 */
import pg from "pg";
import { GetQueueAttributesCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { type EmbeddedSqs, startEmbeddedPostgres, startEmbeddedSqs } from "../../lib/embedded.ts";
import { createSqsClient } from "../../lib/source/sqs.ts";
import { pgTypes } from "../../lib/sink/postgres.ts";
import { DEFAULT_ROLE_PREFIX, dropRoles, migrate } from "../../lib/sink/schema.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const MAIN = `${ROOT}main.ts`;
/** A strong test key (32 bytes of hex text): `masq run` refuses short and published keys. */
export const TEST_KEY = "masq-test-key-7f3a9c21e84b06d5fa1c93e2b7d4068e";

/** The permission flags of a task of deno.json (`$HOME` expanded), as users run it. */
export function taskPermissions(task: string): string[] {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<string, string>;
  const home = Deno.env.get("HOME") ?? "";
  return tasks[task].split(" ").filter((a) => a.startsWith("--allow-") || a === "--no-prompt").map((a) =>
    a.replaceAll("$HOME", home)
  );
}

/** The permission flags of `deno task masq` (which start and demo run), as users run masq. */
export function runPermissions(): string[] {
  return taskPermissions("masq");
}

export interface TestDatabase {
  /** URL for masq (search_path set to the test's schema on a real server). */
  url: string;
  kind: "postgresql" | "pglite";
  /** The prefix of this database's masq roles (unique per test on a shared server). */
  rolePrefix: string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  stop(): Promise<void>;
}

/** A fresh, isolated database for one test, migrated (`masq migrate`) unless `migrated` is false. */
export async function startDatabase(opts: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const base = Deno.env.get("TEST_DATABASE_URL");
  if (base) {
    const schema = `masq_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const admin = new pg.Client({ connectionString: base, types: pgTypes });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.query(`SET search_path = ${schema}`);
    const rolePrefix = `${schema}_`;
    if (opts.migrated !== false) await migrate(admin, { rolePrefix });
    const u = new URL(base);
    u.searchParams.set("options", `-c search_path=${schema}`);
    return {
      url: u.toString(),
      kind: "postgresql",
      rolePrefix,
      async query<T>(sql: string, params?: unknown[]) {
        return (await admin.query(sql, params)).rows as T[];
      },
      async stop() {
        await admin.query(`DROP SCHEMA ${schema} CASCADE`);
        await dropRoles(admin, rolePrefix);
        await admin.end();
      },
    };
  }
  const pgl = await startEmbeddedPostgres();
  const client = new pg.Client({ connectionString: pgl.url, types: pgTypes });
  await client.connect();
  if (opts.migrated !== false) await migrate(client);
  return {
    url: pgl.url,
    kind: "pglite",
    rolePrefix: DEFAULT_ROLE_PREFIX,
    async query<T>(sql: string, params?: unknown[]) {
      return (await client.query(sql, params)).rows as T[];
    },
    async stop() {
      await client.end();
      await pgl.stop();
    },
  };
}

export { type EmbeddedSqs, startEmbeddedSqs };

export function sqsClient(sqs: { endpoint: string }): SQSClient {
  return createSqsClient({ endpoint: sqs.endpoint, region: "us-east-1" }, "json");
}

/** Visible + in-flight + delayed messages of a queue. */
export async function queueDepth(
  client: SQSClient,
  url: string,
): Promise<{ visible: number; inFlight: number }> {
  const res = await client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["All"] }));
  return {
    visible: Number(res.Attributes?.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(res.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
  };
}

/** Receives everything visible in a queue (for inspecting the dead-letter queue). */
export async function receiveAll(client: SQSClient, url: string) {
  const out = [];
  for (;;) {
    const res = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageAttributeNames: ["All"],
        VisibilityTimeout: 60,
      }),
    );
    if (!res.Messages?.length) return out;
    out.push(...res.Messages);
  }
}

export interface MasqResult {
  code: number;
  /** The signal that ended the process, if one did. */
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  /** The parsed last stdout line, when it is JSON. */
  summary: Record<string, number> | undefined;
}

export interface MasqEnv {
  queueUrl: string;
  databaseUrl: string;
  extra?: Record<string, string>;
}

function masqEnv(e: MasqEnv): Record<string, string> {
  return {
    SQS_QUEUE_URL: e.queueUrl,
    DATABASE_URL: e.databaseUrl,
    PII_HMAC_KEY: TEST_KEY,
    NO_COLOR: "1",
    HOME: Deno.env.get("HOME") ?? "/root",
    PATH: Deno.env.get("PATH") ?? "",
    ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
    ...e.extra,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Every subprocess a test starts goes through spawnWatched(): it has a time limit after which it is
// SIGKILLed (and whoever collects it gets an error naming the command), its output is read as it comes
// (so a test can wait for a line), and it can be killed and reaped in the test's clean-up.

/** The time limit of a test's subprocess unless the test gives another (MASQ_TEST_PROCESS_TIMEOUT_MS). */
export const PROCESS_TIMEOUT_MS = Number(Deno.env.get("MASQ_TEST_PROCESS_TIMEOUT_MS") ?? 120_000);

export interface SpawnOptions {
  /** SIGKILL after this long (default PROCESS_TIMEOUT_MS). */
  timeoutMs?: number;
  env?: Record<string, string>;
  clearEnv?: boolean;
  cwd?: string;
  /** How errors name the process (default: the program and its arguments). */
  label?: string;
  /** Written to the process's stdin, which is then closed (default: no stdin). */
  stdin?: string;
}

interface Watch {
  label: string;
  timeoutMs: number;
  timedOut: boolean;
  exited: boolean;
  stdout: string;
  stderr: string;
  /** Resolves once the process has ended and its output has been read to the end. */
  done: Promise<Deno.CommandStatus>;
  /** Called whenever output arrives or the process ends. */
  listeners: Set<() => void>;
}

const watches = new WeakMap<Deno.ChildProcess, Watch>();

function watchOf(child: Deno.ChildProcess): Watch {
  const w = watches.get(child);
  if (!w) throw new Error("this process was not started by spawnWatched()");
  return w;
}

/** Starts a subprocess with piped output, read as it arrives, and SIGKILLed when its time limit passes. */
export function spawnWatched(program: string, args: string[], opts: SpawnOptions = {}): Deno.ChildProcess {
  const child = new Deno.Command(program, {
    args,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.clearEnv ? { clearEnv: true } : {}),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  }).spawn();
  if (opts.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    writer.write(new TextEncoder().encode(opts.stdin)).then(() => writer.close()).catch(() => {});
  }
  const timeoutMs = opts.timeoutMs ?? PROCESS_TIMEOUT_MS;
  const w: Watch = {
    label: opts.label ?? [program, ...args].join(" "),
    timeoutMs,
    timedOut: false,
    exited: false,
    stdout: "",
    stderr: "",
    done: undefined as unknown as Promise<Deno.CommandStatus>,
    listeners: new Set(),
  };
  const notify = () => {
    for (const l of [...w.listeners]) l();
  };
  const pump = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
    try {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        w[key] += text;
        notify();
      }
    } catch { /* the process was killed mid-read */ }
  };
  const output = Promise.all([pump(child.stdout, "stdout"), pump(child.stderr, "stderr")]);
  const timer = setTimeout(() => {
    w.timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* ended meanwhile */ }
  }, timeoutMs);
  w.done = child.status.then(async (status) => {
    clearTimeout(timer);
    w.exited = true;
    await output;
    notify();
    return status;
  });
  watches.set(child, w);
  return child;
}

/** Whether a process from spawnWatched() has ended. */
export function hasExited(child: Deno.ChildProcess): boolean {
  return watchOf(child).exited;
}

/** What a process from spawnWatched() has written to stderr so far. */
export function stderrSoFar(child: Deno.ChildProcess): string {
  return watchOf(child).stderr;
}

function tail(text: string, n = 4000): string {
  return text.length > n ? `...${text.slice(-n)}` : text;
}

/**
 * Waits for `pattern` in a process's output (stderr unless told) and returns the match; rejects when the
 * process ends first or `timeoutMs` passes (the process is left running: the test's clean-up reaps it).
 */
export function waitForOutput(
  child: Deno.ChildProcess,
  pattern: RegExp,
  opts: { stream?: "stdout" | "stderr"; timeoutMs?: number } = {},
): Promise<RegExpExecArray> {
  const w = watchOf(child);
  const stream = opts.stream ?? "stderr";
  const ms = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const finish = () => {
      clearTimeout(timer);
      w.listeners.delete(check);
    };
    function check() {
      const m = pattern.exec(w[stream]);
      if (m) {
        finish();
        resolve(m);
      } else if (w.exited) {
        // Ended: the rest of its output may still be on its way; decide once all of it is read.
        finish();
        w.done.then(() => {
          const late = pattern.exec(w[stream]);
          if (late) return resolve(late);
          reject(new Error(`${w.label}: ended without ${pattern} on ${stream}; stderr:\n${tail(w.stderr)}`));
        });
      }
    }
    const timer = setTimeout(() => {
      finish();
      reject(
        new Error(`${w.label}: no ${pattern} on ${stream} within ${ms / 1000} s; stderr:\n${tail(w.stderr)}`),
      );
    }, ms);
    w.listeners.add(check);
    check();
  });
}

function lastJson(stdout: string): Record<string, number> | undefined {
  const last = stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(last);
  } catch {
    return undefined;
  }
}

/**
 * Waits for a process from spawnWatched() to end and returns its output; throws, naming the command, when
 * its time limit killed it.
 */
export async function collect(child: Deno.ChildProcess): Promise<MasqResult> {
  const w = watchOf(child);
  const status = await w.done;
  if (w.timedOut) {
    throw new Error(
      `${w.label}: still running after ${w.timeoutMs / 1000} s, killed (SIGKILL); stderr:\n${tail(w.stderr)}`,
    );
  }
  return {
    code: status.code,
    signal: status.signal,
    stdout: w.stdout,
    stderr: w.stderr,
    summary: lastJson(w.stdout),
  };
}

/** Spawns `masq <args>` (the real CLI, task permissions) with a clean environment and a time limit. */
export function spawnMasq(args: string[], e: MasqEnv, opts: { timeoutMs?: number } = {}): Deno.ChildProcess {
  return spawnWatched(Deno.execPath(), ["run", ...runPermissions(), MAIN, ...args], {
    env: masqEnv(e),
    clearEnv: true,
    cwd: ROOT,
    label: `masq ${args.join(" ")}`,
    ...opts,
  });
}

/** Runs `masq <args>` to completion (SIGKILLed, and an error thrown, after the time limit). */
export function runMasqCli(
  args: string[],
  e: MasqEnv,
  opts: { timeoutMs?: number } = {},
): Promise<MasqResult> {
  return collect(spawnMasq(args, e, opts));
}

/** runMasqCli() with a time limit of `ms`. */
export function runMasqCliWithin(ms: number, args: string[], e: MasqEnv): Promise<MasqResult> {
  return runMasqCli(args, e, { timeoutMs: ms });
}

/** Test clean-up: SIGKILLs a process still running (if any) and waits until it has ended and been read. */
export async function killAndReap(
  child: Deno.ChildProcess | undefined,
  result?: Promise<unknown>,
): Promise<void> {
  if (child) {
    try {
      child.kill("SIGKILL");
    } catch { /* already ended */ }
    const w = watches.get(child);
    await (w ? w.done : child.status).catch(() => {});
  }
  await result?.catch(() => {});
}

// ---------------------------------------------------------------------------------------------------------
// Fault-injection helpers: an SQS emulator in its own process (to SIGKILL and restart) and a throwaway
// PostgreSQL cluster (to stop and start).

/** Runs one statement on a fresh connection (survives the server going away between calls). */
export async function queryOnce<T = Record<string, unknown>>(
  url: string,
  sql: string,
  params?: unknown[],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url, types: pgTypes, connectionTimeoutMillis: 5_000 });
  client.on("error", () => {}); // a server shutting down must not crash the test process
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end().catch(() => {});
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export interface FauxqsProcess {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  port: number;
  queueUrl(name: string): string;
  /** SIGKILL (or another signal) and wait for the process to end. */
  kill(signal?: Deno.Signal): Promise<void>;
  /** SIGTERM and wait (idempotent). */
  stop(): Promise<void>;
}

const FAUXQS_SERVER = `${ROOT}tests/integration/fauxqs_server.ts`;

/**
 * Starts fauxqs (tests/integration/fauxqs_server.ts) as a subprocess with explicit permissions, on `port`
 * (a free one when absent) and with `dataDir` as its SQLite persistence, and waits for its ready line. It
 * is SIGKILLed after `timeoutMs` (default 10 minutes) if the test has not stopped it.
 */
export async function startFauxqsProcess(
  opts: { port?: number; dataDir?: string; timeoutMs?: number } = {},
): Promise<FauxqsProcess> {
  const dirs = opts.dataDir ? [opts.dataDir] : [];
  const args = [
    "run",
    "--allow-net=127.0.0.1,0.0.0.0",
    "--allow-env=FAUXQS_PORT,FAUXQS_HOST,FAUXQS_DEFAULT_REGION,FAUXQS_LOGGER,FAUXQS_INIT",
    "--allow-sys=networkInterfaces",
    ...(dirs.length ? [`--allow-read=${dirs.join(",")}`, `--allow-write=${dirs.join(",")}`] : []),
    FAUXQS_SERVER,
    "--port",
    String(opts.port ?? 0),
    ...(opts.dataDir ? ["--data-dir", opts.dataDir] : []),
  ];
  // A port just released by a killed process can take a moment to be bindable again.
  for (let attempt = 1;; attempt++) {
    const child = spawnWatched(Deno.execPath(), args, {
      env: { NO_COLOR: "1" },
      cwd: ROOT,
      timeoutMs: opts.timeoutMs ?? 600_000,
      label: `fauxqs process (port ${opts.port ?? "any"})`,
    });
    let port: number;
    try {
      port = Number(
        (await waitForOutput(child, /fauxqs ready (\d+)/, { stream: "stdout", timeoutMs: 30_000 }))[1],
      );
    } catch (err) {
      await killAndReap(child);
      if (attempt < 5 && /EADDRINUSE|AddrInUse|address already in use/i.test(stderrSoFar(child))) {
        await new Promise((r) => setTimeout(r, 500 * attempt));
        continue;
      }
      throw err;
    }
    const endpoint = `http://127.0.0.1:${port}`;
    let ended: Promise<void> | undefined;
    const end = (signal: Deno.Signal) =>
      ended ??= (async () => {
        try {
          child.kill(signal);
        } catch { /* already gone */ }
        // A SIGTERM not obeyed within 10 s becomes a SIGKILL.
        const timer = setTimeout(() => killAndReap(child), 10_000);
        await killAndReap(undefined, collect(child));
        clearTimeout(timer);
      })();
    return {
      endpoint,
      port,
      queueUrl: (name) => `${endpoint}/000000000000/${name}`,
      kill: (signal = "SIGKILL") => end(signal),
      stop: () => end("SIGTERM"),
    };
  }
}

/** The bin directory of a local PostgreSQL installation (PG_BIN, else the newest /usr/lib/postgresql/N). */
export function postgresBinDir(): string | undefined {
  const has = (dir: string) => {
    try {
      return Deno.statSync(`${dir}/initdb`).isFile && Deno.statSync(`${dir}/pg_ctl`).isFile;
    } catch {
      return false;
    }
  };
  const env = Deno.env.get("PG_BIN");
  if (env) return has(env) ? env : undefined;
  let versions: number[] = [];
  try {
    versions = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => Number(e.name)).filter(
      Number.isFinite,
    );
  } catch { /* not installed */ }
  for (const v of versions.sort((a, b) => b - a)) {
    if (has(`/usr/lib/postgresql/${v}/bin`)) return `/usr/lib/postgresql/${v}/bin`;
  }
  return undefined;
}

/** Why startScratchPostgres() cannot work here, or undefined when it can. */
export function scratchPostgresUnavailable(): string | undefined {
  if (postgresBinDir() === undefined) {
    return "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin; set PG_BIN";
  }
  if (Deno.uid() === 0) {
    let passwd = "";
    try {
      passwd = Deno.readTextFileSync("/etc/passwd");
    } catch { /* unreadable: let runuser decide */ }
    if (passwd !== "" && !/^postgres:/m.test(passwd)) {
      return "running as root, and PostgreSQL refuses root, but there is no postgres user to run it as";
    }
  }
  return undefined;
}

export interface ScratchPostgres {
  /** postgres://postgres[:password]@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** pg_ctl start (waits until it accepts connections). */
  start(): Promise<void>;
  /** pg_ctl stop -m fast (waits until it is down). */
  stop(): Promise<void>;
  /** Stops the server if it runs and removes its directory. */
  destroy(): Promise<void>;
}

async function postgresUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (Deno.uid() !== 0) return undefined; // not root: the binaries run as ourselves
  const id = async (flag: string) => {
    const out = await collect(spawnWatched("id", [flag, "postgres"], { timeoutMs: 10_000 }));
    if (out.code !== 0) throw new Error("running as root but there is no postgres user to run PostgreSQL as");
    return Number(out.stdout.trim());
  };
  return { uid: await id("-u"), gid: await id("-g") };
}

/**
 * A throwaway PostgreSQL cluster (initdb + pg_ctl) on a free port on 127.0.0.1, with fsync off. With a
 * password, TCP connections need it (scram-sha-256). As root the binaries run as the postgres user.
 */
export async function startScratchPostgres(opts: { password?: string } = {}): Promise<ScratchPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error("no PostgreSQL binaries (initdb, pg_ctl); set PG_BIN");
  const owner = await postgresUser();
  const dir = await Deno.makeTempDir({ prefix: "masq-pg-" });
  const data = `${dir}/data`;
  const exec = async (cmd: string, args: string[]) => {
    const [program, argv] = owner ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
    // pg_ctl waits up to 60 s itself (-t 60); initdb takes a few seconds.
    const out = await collect(
      spawnWatched(program, argv, { cwd: dir, timeoutMs: 90_000, label: `${cmd} ${args.join(" ")}` }),
    );
    if (out.code !== 0) {
      const log = await Deno.readTextFile(`${dir}/server.log`).catch(() => "");
      throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}):\n${out.stderr}\n${log}`);
    }
  };
  try {
    if (owner) await Deno.chown(dir, owner.uid, owner.gid);
    const initArgs = ["-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C", "-N", "--auth-local=trust"];
    if (opts.password !== undefined) {
      await Deno.writeTextFile(`${dir}/pwfile`, opts.password + "\n", { mode: 0o600 });
      if (owner) await Deno.chown(`${dir}/pwfile`, owner.uid, owner.gid);
      initArgs.push("--auth-host=scram-sha-256", `--pwfile=${dir}/pwfile`);
    } else {
      initArgs.push("--auth-host=trust");
    }
    await exec(`${bin}/initdb`, initArgs);
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
  const port = freePort();
  const serverOptions = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    `-k ${dir}`,
    "-c fsync=off",
    "-c max_connections=40",
    "-c shared_buffers=16MB",
  ].join(" ");
  let running = false;
  const cluster: ScratchPostgres = {
    url: `postgres://postgres${
      opts.password !== undefined ? `:${encodeURIComponent(opts.password)}` : ""
    }@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      await exec(`${bin}/pg_ctl`, [
        "-D",
        data,
        "-l",
        `${dir}/server.log`,
        "-w",
        "-t",
        "60",
        "-o",
        serverOptions,
        "start",
      ]);
      running = true;
    },
    async stop() {
      await exec(`${bin}/pg_ctl`, ["-D", data, "-m", "fast", "-w", "-t", "60", "stop"]);
      running = false;
    },
    async destroy() {
      if (running) await cluster.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  try {
    await cluster.start();
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  return cluster;
}

/** Runs `masq migrate` (idempotent) on a test database: its tables, function, view and roles. */
export async function createSchema(db: { url: string; rolePrefix?: string }): Promise<void> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await migrate(client, { rolePrefix: db.rolePrefix ?? DEFAULT_ROLE_PREFIX });
  } finally {
    await client.end();
  }
}
