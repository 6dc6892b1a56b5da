/**
 * A real PgBouncer for the tests, in front of TEST_DATABASE_URL's server, in transaction or session mode,
 * on a port of i19-db's range (56400-56419), run as the postgres user when the test runs as root (PgBouncer
 * refuses root). Trust authentication from the test to PgBouncer (the users are listed in its auth file)
 * and from PgBouncer to the server, as the local test server trusts 127.0.0.1.
 *
 * @module
 */
import { collect, spawnWatched, stderrSoFar, waitForOutput } from "./processes.ts";

export interface Pgbouncer {
  /** postgres://<user>@127.0.0.1:<port>/<database>: the pooler's URL for a user. */
  url(user: string): string;
  port: number;
  /** What PgBouncer logged so far. */
  log(): string;
  stop(): Promise<void>;
}

/** Why startPgbouncer() cannot work here, or undefined when it can. */
export function pgbouncerUnavailable(): string | undefined {
  if (!Deno.env.get("TEST_DATABASE_URL")) {
    return "needs TEST_DATABASE_URL (a real PostgreSQL behind the pooler)";
  }
  for (const dir of ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"]) {
    try {
      if (Deno.statSync(`${dir}/pgbouncer`).isFile) return undefined;
    } catch { /* not there */ }
  }
  return "pgbouncer is not installed (Debian: apt-get install pgbouncer; .ci/run installs it)";
}

function portInRange(): number {
  for (let i = 0; i < 50; i++) {
    const port = 56400 + Math.floor(Math.random() * 20);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch { /* taken */ }
  }
  throw new Error("no free port in 56400-56419 for pgbouncer");
}

async function postgresIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (Deno.uid() !== 0) return undefined;
  const id = async (flag: string) =>
    Number((await collect(spawnWatched("id", [flag, "postgres"], { timeoutMs: 10_000 }))).stdout.trim());
  return { uid: await id("-u"), gid: await id("-g") };
}

/**
 * Starts PgBouncer for `users` (all of them must exist on the server by the time they connect) and waits
 * until it listens. `poolSize` is its default_pool_size: server connections per (database, user) pair.
 */
export async function startPgbouncer(opts: {
  mode: "transaction" | "session";
  users: readonly string[];
  poolSize?: number;
  /** Seconds a client waits for a server connection before PgBouncer gives up (query_wait_timeout). */
  queryWaitTimeout?: number;
}): Promise<Pgbouncer> {
  const why = pgbouncerUnavailable();
  if (why) throw new Error(why);
  const server = new URL(Deno.env.get("TEST_DATABASE_URL")!);
  const database = server.pathname.slice(1) || "postgres";
  const dir = await Deno.makeTempDir({ prefix: "masq-pgbouncer-" });
  const port = portInRange();
  await Deno.writeTextFile(`${dir}/users.txt`, opts.users.map((u) => `"${u}" ""`).join("\n") + "\n");
  await Deno.writeTextFile(
    `${dir}/pgbouncer.ini`,
    `[databases]
${database} = host=${server.hostname} port=${server.port || "5432"} dbname=${database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${dir}/users.txt
pool_mode = ${opts.mode}
default_pool_size = ${opts.poolSize ?? 20}
max_client_conn = 200
query_wait_timeout = ${opts.queryWaitTimeout ?? 30}
server_reset_query = DISCARD ALL
`,
  );
  const ids = await postgresIds();
  if (ids) {
    for (const f of ["", "/users.txt", "/pgbouncer.ini"]) await Deno.chown(`${dir}${f}`, ids.uid, ids.gid);
  }
  const args = [`${dir}/pgbouncer.ini`];
  const child = ids
    ? spawnWatched("runuser", ["-u", "postgres", "--", "pgbouncer", ...args], { timeoutMs: 900_000 })
    : spawnWatched("pgbouncer", args, { timeoutMs: 900_000 });
  try {
    await waitForOutput(child, /process up|listening on 127\.0\.0\.1/i, { timeoutMs: 20_000 });
  } catch (err) {
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
  let stopped = false;
  return {
    port,
    url: (user) => `postgres://${user}@127.0.0.1:${port}/${database}`,
    log: () => stderrSoFar(child),
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        child.kill("SIGTERM");
      } catch { /* ended */ }
      await collect(child).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
