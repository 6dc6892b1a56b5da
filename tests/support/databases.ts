/**
 * The tests' PostgreSQL: a fresh, migrated schema per test (on TEST_DATABASE_URL, else an embedded PGlite),
 * one-off queries that survive a server going away, and a throwaway cluster to stop and start.
 *
 * @module
 */
import pg from "pg";
import { startEmbeddedPostgres } from "../../lib/embedded.ts";
import { pgTypes } from "../../lib/sink/postgres.ts";
import { DEFAULT_ROLE_PREFIX, dropRoles, migrate } from "../../lib/sink/schema.ts";
import { collect, freePort, spawnWatched } from "./processes.ts";

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
