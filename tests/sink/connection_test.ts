/**
 * resolveTarget() and connectionError() of lib/sink/connection.ts, without a server (the certificate files
 * in tests/testdata/tls are only parsed). The handshakes against a real hostssl-only cluster, through the
 * CLI, are in tests/integration/tls_test.ts.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "../support/assert.ts";
import { attemptsOf, clientConfig, connectionError, resolveTarget } from "../../lib/sink/connection.ts";
import { ConfigError } from "../../lib/errors.ts";

const DATA = new URL("../testdata/tls/", import.meta.url).pathname;
const CA = `${DATA}ca.pem`;
const CERT = `${DATA}client.crt`;
const KEY = `${DATA}client.key`;
const OTHER_KEY = `${DATA}other.key`;
const noEnv = (_: string): string | undefined => undefined;
const envOf = (vars: Record<string, string>) => (name: string): string | undefined => vars[name];
const URL_BASE = "postgres://app:pw@db.internal:5433/logins";

function configError(fn: () => unknown): string {
  const err = assertThrows(fn, ConfigError);
  assert(!err.message.includes("\n"), `one line: ${err.message}`);
  return err.message;
}

Deno.test("resolveTarget() gives each sslmode libpq's meaning: what is tried, and what is checked", () => {
  const t = (q: string, env = noEnv) => resolveTarget(`${URL_BASE}?${q}`, env);
  assertEquals(attemptsOf(t("sslmode=disable")), [false]);
  const allow = attemptsOf(t("sslmode=allow"));
  assertEquals([allow.length, allow[0]], [2, false]);
  assertEquals((allow[1] as { rejectUnauthorized: boolean }).rejectUnauthorized, false);
  const prefer = attemptsOf(t(""));
  assertEquals(t("").mode, "prefer", "libpq's default");
  assertEquals([prefer.length, prefer[1]], [2, false]);
  assertEquals((prefer[0] as { rejectUnauthorized: boolean }).rejectUnauthorized, false);

  const require = t("sslmode=require");
  assertEquals(require.tls?.rejectUnauthorized, false, "require checks nothing without a root certificate");
  assertEquals(attemptsOf(require).length, 1, "require never falls back to plaintext");
  const requireCa = t(`sslmode=require&sslrootcert=${CA}`);
  assertEquals(requireCa.tls?.rejectUnauthorized, true, "with a root certificate, require is verify-ca");
  assertEquals(requireCa.tls?.ca, Deno.readTextFileSync(CA));
  assertEquals(requireCa.tls?.checkServerIdentity?.("x", {} as never), undefined);

  const verifyCa = t(`sslmode=verify-ca&sslrootcert=${CA}`);
  assertEquals([verifyCa.tls?.rejectUnauthorized, typeof verifyCa.tls?.checkServerIdentity], [
    true,
    "function",
  ]);
  const full = t(`sslmode=verify-full&sslrootcert=${CA}`);
  assertEquals([full.tls?.rejectUnauthorized, full.tls?.checkServerIdentity], [true, undefined]);
  assertEquals(full.tls?.ca, Deno.readTextFileSync(CA), "pg gets the contents, not the path");
  const system = t("sslmode=verify-full&sslrootcert=system");
  assertEquals([system.rootCert, system.tls?.ca], ["system", undefined]);
});

Deno.test("resolveTarget() takes the URL's parameters over PGSSL* variables, as libpq does, and hands pg no sslmode", () => {
  const env = envOf({ PGSSLMODE: "verify-full", PGSSLROOTCERT: "/nowhere/ca.pem" });
  const fromEnv = configError(() => resolveTarget(URL_BASE, env));
  assertMatch(fromEnv, /^PGSSLROOTCERT: root certificate file \/nowhere\/ca\.pem does not exist$/);
  const t = resolveTarget(`${URL_BASE}?sslmode=require&sslrootcert=${CA}&options=-c%20search_path%3Dx`, env);
  assertEquals([t.mode, (t.rootCert as { path: string }).path], ["require", CA]);
  const viaEnv = resolveTarget(URL_BASE, envOf({ PGSSLMODE: "verify-ca", PGSSLROOTCERT: CA }));
  assertEquals([viaEnv.mode, viaEnv.modeSetting], ["verify-ca", "PGSSLMODE"]);
  const config = clientConfig(t, t.tls!);
  assertEquals(new URL(config.connectionString!).search, "?options=-c+search_path%3Dx");
  assertEquals(new URL(config.connectionString!).password, "pw");
});

Deno.test("resolveTarget() says in one line which setting is wrong when a certificate file is missing, not PEM or incomplete", () => {
  const r = (q: string, env = noEnv) => configError(() => resolveTarget(`${URL_BASE}?${q}`, env));
  assertMatch(
    r("sslmode=verify-full&sslrootcert=/etc/masq/tls/none.pem"),
    /^sslrootcert \(in --database-url \/ DATABASE_URL\): root certificate file \/etc\/masq\/tls\/none\.pem does not exist$/,
  );
  assertMatch(
    r(`sslmode=verify-full&sslrootcert=${DATA}README.md`),
    /^sslrootcert .*holds no PEM certificate/,
  );
  assertMatch(r(`sslmode=verify-full&sslrootcert=${DATA}`), /^sslrootcert .*is a directory/);
  assertMatch(
    r("sslmode=verify-full"),
    /^sslmode \(in .*\): sslmode=verify-full checks .*no root certificate is given: set sslrootcert=/,
  );
  assertMatch(r("", envOf({ PGSSLMODE: "verify-ca" })), /^PGSSLMODE: sslmode=verify-ca checks/);
  assertMatch(
    r("sslmode=verify_full"),
    /^sslmode .*"verify_full" is not one of disable, allow, prefer, require, verify-ca, verify-full$/,
  );
  assertMatch(r(`sslmode=require&sslcert=${CERT}`), /^sslcert .*needs its private key: set sslkey=/);
  assertMatch(r(`sslmode=require&sslkey=${KEY}`), /^sslkey .*without a client certificate/);
  assertMatch(
    r(`sslmode=require&sslcert=${CERT}&sslkey=${OTHER_KEY}`),
    /^sslkey .*does not belong to the client certificate$/,
  );
  assertMatch(r(`sslmode=require&sslcert=${CERT}&sslkey=${CA}`), /^sslkey .*holds no PEM private key/);
  assertMatch(r("sslmode=require&ssl=true"), /^ssl \(in .*\): is node-postgres's, not libpq's; use sslmode/);
  assertMatch(r("sslmode=require&sslcrl=/x"), /^sslcrl .*revocation lists are not supported/);
  assertMatch(r("sslnegotiation=direct"), /^sslnegotiation .*"direct" is not supported/);
  const ok = resolveTarget(`${URL_BASE}?sslmode=require&sslcert=${CERT}&sslkey=${KEY}`, noEnv);
  assertEquals([ok.tls?.cert, ok.tls?.key], [Deno.readTextFileSync(CERT), Deno.readTextFileSync(KEY)]);
});

Deno.test("resolveTarget() uses libpq's ~/.postgresql/root.crt when it exists: then require checks the chain", () => {
  const home = Deno.makeTempDirSync();
  try {
    const env = envOf({ HOME: home });
    assertEquals(resolveTarget(`${URL_BASE}?sslmode=require`, env).tls?.rejectUnauthorized, false);
    Deno.mkdirSync(`${home}/.postgresql`);
    Deno.copyFileSync(CA, `${home}/.postgresql/root.crt`);
    const t = resolveTarget(`${URL_BASE}?sslmode=require`, env);
    assertEquals([t.tls?.rejectUnauthorized, t.tls?.ca], [true, Deno.readTextFileSync(CA)]);
    assertEquals(resolveTarget(`${URL_BASE}?sslmode=verify-full`, env).tls?.ca, Deno.readTextFileSync(CA));
  } finally {
    Deno.removeSync(home, { recursive: true });
  }
});

Deno.test("resolveTarget() names the paths masq may read when a certificate file is outside them", () => {
  const notCapable = () => {
    throw new Deno.errors.NotCapable(
      'Requires read access to "/tmp/ca.pem", run again with the --allow-read flag',
    );
  };
  const msg = configError(() =>
    resolveTarget(`${URL_BASE}?sslmode=verify-full&sslrootcert=/tmp/ca.pem`, noEnv, notCapable)
  );
  assertMatch(
    msg,
    /^sslrootcert .*masq may not read \/tmp\/ca\.pem: certificate files must be under \/etc\/masq, \/run\/secrets/,
  );
  assert(!msg.includes("--allow-read flag"), msg);
  const denied = () => {
    throw new Deno.errors.PermissionDenied("Permission denied (os error 13)");
  };
  assertMatch(
    configError(() =>
      resolveTarget(`${URL_BASE}?sslmode=verify-full`, envOf({ PGSSLROOTCERT: "/etc/masq/ca.pem" }), denied)
    ),
    /^PGSSLROOTCERT: cannot read root certificate file \/etc\/masq\/ca\.pem: permission denied for this user$/,
  );
});

Deno.test("connectionError() tells a wrong CA from an untrusted one, a host name mismatch and a server without TLS", () => {
  const tlsErr = (code: string, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(code), { code, cert: { issuer: { CN: "Other CA" }, ...extra } });
  const withCa = resolveTarget(`${URL_BASE}?sslmode=verify-full&sslrootcert=${CA}`, noEnv);
  assertMatch(
    connectionError(tlsErr("SELF_SIGNED_CERT_IN_CHAIN"), withCa).message,
    /^sslrootcert .*: the server's certificate at db\.internal:5433 \(issued by "Other CA"\) is not signed by the CA in .*ca\.pem \("masq unit test CA"\): wrong CA file\?/,
  );
  const system = resolveTarget(`${URL_BASE}?sslmode=verify-full&sslrootcert=system`, noEnv);
  assertMatch(
    connectionError(tlsErr("UNABLE_TO_VERIFY_LEAF_SIGNATURE"), system).message,
    /^sslmode .*not signed by any of the system's trusted roots; give its CA with sslrootcert=<file> or PGSSLROOTCERT/,
  );
  assertMatch(
    connectionError(tlsErr("ERR_TLS_CERT_ALTNAME_INVALID", { subjectaltname: "DNS:localhost" }), withCa)
      .message,
    /^sslmode .*verify-full: the server's certificate names DNS:localhost, not db\.internal; .*or use sslmode=verify-ca$/,
  );
  const require = resolveTarget(`${URL_BASE}?sslmode=require`, noEnv);
  assertMatch(
    connectionError(new Error("The server does not support SSL connections"), require).message,
    /^sslmode .*: sslmode=require, but the server at db\.internal:5433 does not support TLS/,
  );
  const other = connectionError(
    Object.assign(new Error("password authentication failed"), { code: "28P01" }),
    require,
  );
  assertEquals(
    other.message,
    `--database-url / DATABASE_URL: cannot use postgres://app:***@db.internal:5433/logins?sslmode=require: password authentication failed (28P01)`,
  );
});

Deno.test("resolveTarget() reads the deploy manifests' shape: verify-full with the CA at /etc/masq/tls/ca.pem", () => {
  const pem = Deno.readTextFileSync(CA);
  const read = (path: string) => {
    if (path !== "/etc/masq/tls/ca.pem") throw new Deno.errors.NotFound(path);
    return pem;
  };
  const t = resolveTarget(
    "postgres://masq_app@postgres.example.internal:5432/logins?sslmode=verify-full&sslrootcert=/etc/masq/tls/ca.pem",
    noEnv,
    read,
  );
  assertEquals([t.mode, t.host, t.port], ["verify-full", "postgres.example.internal", 5432]);
  assertEquals([t.tls?.ca, t.tls?.rejectUnauthorized, t.tls?.checkServerIdentity], [pem, true, undefined]);
  assertEquals(attemptsOf(t).length, 1, "no plaintext fallback");
  assertEquals(
    clientConfig(t, t.tls!).connectionString,
    "postgres://masq_app@postgres.example.internal:5432/logins",
  );
});

Deno.test("resolveTarget() opens an encrypted client key with sslpassword, and says so in one line when it cannot", () => {
  const enc = `${DATA}client-enc.key`;
  const url = (pw?: string) =>
    `${URL_BASE}?sslmode=require&sslcert=${CERT}&sslkey=${enc}${
      pw === undefined ? "" : `&sslpassword=${pw}`
    }`;
  const t = resolveTarget(url("unit-test-pass"), noEnv);
  assertEquals([t.tls?.key, t.tls?.passphrase], [Deno.readTextFileSync(enc), "unit-test-pass"]);
  assertMatch(
    configError(() => resolveTarget(url(), noEnv)),
    /^sslkey .*cannot load the client key \(encrypted\? give sslpassword/,
  );
  const wrong = configError(() => resolveTarget(url("not-it"), noEnv));
  assertMatch(wrong, /^sslkey .*cannot load the client key/);
  assert(!wrong.includes("not-it"), wrong);
});
