/**
 * The shipped deployment files against real components (tests/deploy_test.ts checks their shape): the
 * migrate Job's and the ConfigMap's DATABASE_URL, only host, port and CA path changed, against a throwaway
 * PostgreSQL cluster with TLS (certificates made here with openssl) and password authentication; the Job's
 * arguments make the writer login, which `masq run` then uses with the Deployment's password. And
 * `docker-compose config -q` accepts docker-compose.yml.
 */
import { parseAllDocuments } from "yaml";
import pg from "pg";
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { collect, ROOT, spawnWatched, TEST_KEY } from "../support/processes.ts";
import { scratchPostgresUnavailable, startScratchPostgres } from "../support/databases.ts";
import { masq } from "../support/lifecycle.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

// deno-lint-ignore no-explicit-any
type Manifest = Record<string, any>;

function manifest(file: string, kind: string): Manifest {
  const docs = parseAllDocuments(Deno.readTextFileSync(`${ROOT}deploy/k8s/${file}`)).map((d) => d.toJS());
  const found = docs.find((d) => d?.kind === kind);
  assert(found, `${file}: ${kind}`);
  return found;
}

async function run(program: string, args: string[], cwd?: string): Promise<void> {
  let out;
  try {
    out = await collect(spawnWatched(program, args, { timeoutMs: 60_000, ...(cwd ? { cwd } : {}) }));
  } catch (err) {
    throw new Error(`${program} is needed here (.ci/run installs it): ${err}`);
  }
  assertEquals(out.code, 0, `${program} ${args.join(" ")}: ${out.stderr}`);
}

/** A CA and a server certificate for 127.0.0.1 signed by it, in `dir`. */
async function makeCertificates(dir: string): Promise<void> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=masq test CA",
  ], dir);
  await run("openssl", [
    "req",
    ...ec,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  ], dir);
  await Deno.writeTextFile(`${dir}/san.ext`, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    "2",
    "-extfile",
    "san.ext",
  ], dir);
}

/** The shipped URL with only the server's address and the CA file's path replaced. */
function localised(shipped: string, port: number, caPath: string): string {
  const url = new URL(shipped);
  assertEquals(url.searchParams.get("sslrootcert"), "/etc/masq/tls/ca.pem");
  url.hostname = "127.0.0.1";
  url.port = String(port);
  url.searchParams.set("sslrootcert", caPath);
  return url.href;
}

const OWNER_PASSWORD = "owner-password-of-the-deploy-test-41";
const WRITER_PASSWORD = "writer-password-of-the-deploy-test-97";

Deno.test({
  name:
    "the migrate Job's URL and arguments make the writer login, and the ConfigMap's URL runs as it: verify-full TLS, passwords checked",
  ignore: scratchPostgresUnavailable() !== undefined,
}, async () => {
  const dir = await Deno.makeTempDir({ prefix: "masq-deploy-" });
  const cluster = await startScratchPostgres({ password: "postgres-password-of-the-deploy-test" });
  const sqs = await startEmbeddedSqs();
  try {
    await makeCertificates(dir);
    if (Deno.uid() === 0) {
      const id = async (flag: string) =>
        Number((await collect(spawnWatched("id", [flag, "postgres"], { timeoutMs: 10_000 }))).stdout.trim());
      const [uid, gid] = [await id("-u"), await id("-g")];
      for (const f of ["server.crt", "server.key"]) await Deno.chown(`${dir}/${f}`, uid, gid);
      await Deno.chmod(dir, 0o755);
    }
    await Deno.chmod(`${dir}/server.key`, 0o600);
    const admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    try {
      // TLS on (a reload is enough), and the roles and database a DBA would make for the Job's URL.
      await admin.query(`ALTER SYSTEM SET ssl_cert_file = '${dir}/server.crt'`);
      await admin.query(`ALTER SYSTEM SET ssl_key_file = '${dir}/server.key'`);
      await admin.query("ALTER SYSTEM SET ssl = on");
      await admin.query("SELECT pg_reload_conf()");
      await admin.query(`CREATE ROLE masq_owner LOGIN CREATEROLE PASSWORD '${OWNER_PASSWORD}'`);
      await admin.query("CREATE DATABASE logins OWNER masq_owner");
    } finally {
      await admin.end();
    }
    const job = manifest("migrate-job.yaml", "Job").spec.template.spec.containers[0];
    const jobUrl = localised(
      job.env.find((e: Manifest) => e.name === "DATABASE_URL").value,
      cluster.port,
      `${dir}/ca.pem`,
    );
    const migrated = await masq(job.args, {
      databaseUrl: jobUrl,
      env: { PGPASSWORD: OWNER_PASSWORD, MASQ_WRITER_PASSWORD: WRITER_PASSWORD },
      read: [dir],
    });
    assertEquals(migrated.code, 0, migrated.stderr);

    const config = manifest("configmap.yaml", "ConfigMap").data;
    const runUrl = localised(config.DATABASE_URL, cluster.port, `${dir}/ca.pem`);
    const queueUrl = sqs.createQueue("deployed");
    for (let i = 0; i < 20; i++) {
      sqs.send("deployed", JSON.stringify({ user_id: `u${i}`, ip: "198.51.100.7", app_version: "1.2.3" }));
    }
    const env = { SQS_QUEUE_URL: queueUrl, PII_HMAC_KEY: TEST_KEY, MASQ_WAIT_SECONDS: "0" };
    const wrong = await masq(["run"], {
      databaseUrl: runUrl,
      env: { ...env, PGPASSWORD: "not-the-password-0123" },
      read: [dir],
    });
    assertEquals(wrong.code, 2, wrong.stderr);
    assertMatch(wrong.stderr, /password authentication failed/);
    const ran = await masq(["run"], {
      databaseUrl: runUrl,
      env: { ...env, PGPASSWORD: WRITER_PASSWORD },
      read: [dir],
    });
    assertEquals(ran.code, 0, ran.stderr);
    assertEquals(JSON.parse(ran.stdout.trim().split("\n").at(-1)!).inserted, 20);
    assert(!/connected as a role that may/.test(ran.stderr), "the login has the writer's rights only");

    // The rows are in the owner's schema, written over TLS by the login.
    const ownerUrl = new URL(jobUrl);
    ownerUrl.password = OWNER_PASSWORD;
    const owner = new pg.Client({ connectionString: ownerUrl.href });
    await owner.connect();
    try {
      const [row] = (await owner.query(
        `SELECT (SELECT count(*)::int FROM user_logins) AS n,
                (SELECT bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE usename = current_user) AS tls`,
      )).rows;
      assertEquals(row, { n: 20, tls: true });
    } finally {
      await owner.end();
    }
  } finally {
    await sqs.stop();
    await cluster.destroy();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("docker-compose.yml: `docker-compose config -q` accepts it", async () => {
  await run("docker-compose", ["-f", `${ROOT}docker-compose.yml`, "config", "-q"], ROOT);
});
