/**
 * TLS to PostgreSQL through the real CLI (lib/sink/connection.ts; its pure tests are in
 * tests/sink/connection_test.ts): a throwaway cluster with ssl=on and hostssl-only pg_hba, another with TLS
 * off, certificates made by openssl (tests/support/tls_cluster.ts), every sslmode's behaviour and every
 * misconfiguration line (exit 2) for run and migrate, and the certificate-file lines for recover, forget,
 * rekey and redrive. Ports 56420-56421.
 */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { type MasqResult, runMasqCliWithin } from "../support/processes.ts";
import {
  CLIENT_KEY_PASSPHRASE,
  makeCertificates,
  startTlsCluster,
  tlsToolsMissing,
} from "../support/tls_cluster.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import { connectClient } from "../../lib/sink/connection.ts";
import { VAULT_KEY_B64 } from "../support/lifecycle.ts";

const TLS_PORT = 56420;
const PLAIN_PORT = 56421;
const noEnv = (_: string): string | undefined => undefined;

/** One line on stderr (besides Deno's own), `masq: <setting>: <problem>`, and exit 2. */
function assertConfigLine(res: MasqResult, pattern: RegExp, what: string) {
  assertEquals(res.code, 2, `${what}: ${res.stderr}`);
  const lines = res.stderr.trim().split("\n");
  assertEquals(lines.length, 1, `${what}: one line: ${res.stderr}`);
  assertMatch(lines[0], pattern, what);
  assert(!/--allow-read flag|ENOENT|SECURITY WARNING/.test(res.stderr), `${what}: ${res.stderr}`);
}

Deno.test("masq connects to PostgreSQL as libpq's sslmode says, and every TLS misconfiguration is one line and exit 2", async (t) => {
  const missing = tlsToolsMissing();
  if (missing) throw new Error(`the TLS tests need ${missing}`);
  // Undone in reverse order in `finally`, whatever fails.
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const certs = await makeCertificates();
    cleanups.push(() => certs.remove());
    const tls = await startTlsCluster({ port: TLS_PORT, certs });
    cleanups.push(() => tls.destroy());
    const plain = await startTlsCluster({ port: PLAIN_PORT });
    cleanups.push(() => plain.destroy());
    const sqs = await startEmbeddedSqs();
    cleanups.push(() => sqs.stop());
    const queueUrl = sqs.createQueue("tls-logins", { VisibilityTimeout: "30" });
    const admin = await connectClient(tls.url({ sslmode: "verify-full", sslrootcert: certs.ca }), noEnv);
    await admin.query("CREATE ROLE certuser LOGIN SUPERUSER");
    await admin.end();
    const cli = (args: string[], databaseUrl: string, extra: Record<string, string> = {}) =>
      runMasqCliWithin(60_000, args, { queueUrl, databaseUrl, extra });

    await t.step(
      "migrate and run work with sslmode=verify-full&sslrootcert=<CA file> (the deploy shape), JSON logs stay JSON",
      async () => {
        const url = tls.url({ sslmode: "verify-full", sslrootcert: certs.ca });
        const migrated = await cli(["migrate"], url);
        assertEquals(migrated.code, 0, migrated.stderr);
        for (let i = 0; i < 5; i++) {
          sqs.send("tls-logins", JSON.stringify({ user_id: `u${i}`, ip: "10.0.0.1", device_id: `d${i}` }));
        }
        const run = await cli(["run", "--log-format", "json"], tls.url({ sslmode: "require" }));
        assertEquals(run.code, 0, run.stderr);
        assertEquals(run.summary?.inserted, 5);
        for (const line of run.stderr.trim().split("\n")) JSON.parse(line); // one JSON object a line
        assert(!run.stderr.includes("SECURITY WARNING"), run.stderr);
        const plainMigrate = await cli(["migrate"], plain.url());
        assertEquals(plainMigrate.code, 0, plainMigrate.stderr);
      },
    );

    const ok = 0;
    const cases: { name: string; url: string; env?: Record<string, string>; expect: number | RegExp }[] = [
      {
        name: "disable against hostssl only",
        url: tls.url({ sslmode: "disable" }),
        expect:
          /^masq: sslmode \(in --database-url \/ DATABASE_URL\): sslmode=disable, but the server at 127\.0\.0\.1:56420 accepts only TLS connections/,
      },
      { name: "disable against no TLS", url: plain.url({ sslmode: "disable" }), expect: ok },
      {
        name: "allow against hostssl only (plaintext refused: TLS)",
        url: tls.url({ sslmode: "allow" }),
        expect: ok,
      },
      { name: "allow against no TLS", url: plain.url({ sslmode: "allow" }), expect: ok },
      { name: "prefer (the default) against hostssl only", url: tls.url(), expect: ok },
      { name: "prefer (the default) against no TLS falls back to plaintext", url: plain.url(), expect: ok },
      {
        name: "require against a private CA: TLS, nothing checked",
        url: tls.url({ sslmode: "require" }),
        expect: ok,
      },
      {
        name: "require against no TLS",
        url: plain.url({ sslmode: "require" }),
        expect:
          /^masq: sslmode \(in --database-url \/ DATABASE_URL\): sslmode=require, but the server at 127\.0\.0\.1:56421 does not support TLS/,
      },
      {
        name: "require with a root certificate is verify-ca: right CA",
        url: tls.url({ sslmode: "require", sslrootcert: certs.ca }, "127.0.0.2"),
        expect: ok,
      },
      {
        name: "require with a root certificate is verify-ca: wrong CA",
        url: tls.url({ sslmode: "require", sslrootcert: certs.otherCa }),
        expect:
          /^masq: sslrootcert \(in --database-url \/ DATABASE_URL\): the server's certificate at 127\.0\.0\.1:56420 is not signed by the CA in .*other-ca\.pem \("unrelated test CA"\): wrong CA file\?/,
      },
      {
        name: "verify-ca does not check the host name",
        url: tls.url({ sslmode: "verify-ca", sslrootcert: certs.ca }, "127.0.0.2"),
        expect: ok,
      },
      {
        name: "verify-ca without a root certificate",
        url: tls.url({ sslmode: "verify-ca" }),
        expect:
          /^masq: sslmode \(in --database-url \/ DATABASE_URL\): sslmode=verify-ca checks the server's certificate but no root certificate is given: set sslrootcert=/,
      },
      {
        name: "verify-full by IP",
        url: tls.url({ sslmode: "verify-full", sslrootcert: certs.ca }),
        expect: ok,
      },
      {
        name: "verify-full by name",
        url: tls.url({ sslmode: "verify-full", sslrootcert: certs.ca }, "localhost"),
        expect: ok,
      },
      {
        name: "verify-full, host name not in the certificate",
        url: tls.url({ sslmode: "verify-full", sslrootcert: certs.ca }, "127.0.0.2"),
        expect:
          /^masq: sslmode \(in .*\): sslmode=verify-full: the server's certificate names DNS:localhost, IP Address:127\.0\.0\.1, not 127\.0\.0\.2; connect by a name it holds, or use sslmode=verify-ca$/,
      },
      {
        name: "verify-full, wrong CA",
        url: tls.url({ sslmode: "verify-full", sslrootcert: certs.otherCa }),
        expect:
          /^masq: sslrootcert \(in .*\): the server's certificate .* is not signed by the CA in .*other-ca\.pem/,
      },
      {
        name: "verify-full, no CA of its own (system roots)",
        url: tls.url({ sslmode: "verify-full", sslrootcert: "system" }),
        expect:
          /^masq: sslmode \(in .*\): the server's certificate at 127\.0\.0\.1:56420 is not signed by any of the system's trusted roots; give its CA with sslrootcert=<file> or PGSSLROOTCERT/,
      },
      {
        name: "verify-full against no TLS",
        url: plain.url({ sslmode: "verify-full", sslrootcert: certs.ca }),
        expect:
          /^masq: sslmode .*sslmode=verify-full, but the server at 127\.0\.0\.1:56421 does not support TLS/,
      },
      {
        name: "PGSSLMODE and PGSSLROOTCERT are honoured",
        url: tls.url(),
        env: { PGSSLMODE: "verify-full", PGSSLROOTCERT: certs.ca },
        expect: ok,
      },
      {
        name: "PGSSLROOTCERT of the wrong CA",
        url: tls.url(),
        env: { PGSSLMODE: "verify-ca", PGSSLROOTCERT: certs.otherCa },
        expect:
          /^masq: PGSSLROOTCERT: the server's certificate .* is not signed by the CA in .*other-ca\.pem/,
      },
      {
        name: "the URL's sslmode wins over PGSSLMODE",
        url: plain.url({ sslmode: "prefer" }),
        env: { PGSSLMODE: "verify-full" },
        expect: ok,
      },
      {
        name: "a client certificate (pg_hba cert)",
        url: tls.url({
          sslmode: "verify-full",
          sslrootcert: certs.ca,
          sslcert: certs.clientCert,
          sslkey: certs.clientKey,
          user: "certuser",
        }),
        expect: ok,
      },
      {
        name: "an encrypted client key with sslpassword",
        url: tls.url({
          sslmode: "verify-full",
          sslrootcert: certs.ca,
          sslcert: certs.clientCert,
          sslkey: certs.clientKeyEncrypted,
          sslpassword: CLIENT_KEY_PASSPHRASE,
          user: "certuser",
        }),
        expect: ok,
      },
      {
        name: "a role that needs a client certificate, without one",
        url: tls.url({ sslmode: "verify-full", sslrootcert: certs.ca, user: "certuser" }),
        expect:
          /^masq: --database-url \/ DATABASE_URL: cannot use .*: connection requires a valid client certificate \(28000\)$/,
      },
      {
        name: "a missing CA file",
        url: tls.url({ sslmode: "verify-full", sslrootcert: `${certs.dir}/none.pem` }),
        expect: /^masq: sslrootcert \(in .*\): root certificate file .*none\.pem does not exist$/,
      },
      {
        name: "a CA file outside the paths masq may read",
        url: tls.url({ sslmode: "verify-full", sslrootcert: certs.outsideCa }),
        expect:
          /^masq: sslrootcert \(in .*\): masq may not read .*\/ca\.pem: certificate files must be under \/etc\/masq, \/run\/secrets, ~\/\.postgresql, or data\/ or secrets\/ in masq's directory \(see docs\/tls\.md\)$/,
      },
      {
        name: "a CA file that is not PEM",
        url: tls.url({ sslmode: "verify-full", sslrootcert: certs.notPem }),
        expect: /^masq: sslrootcert \(in .*\): .*not-pem\.pem holds no PEM certificate/,
      },
      {
        name: "the deploy manifests' path, absent here",
        url:
          `postgres://postgres@127.0.0.1:${TLS_PORT}/postgres?sslmode=verify-full&sslrootcert=/etc/masq/tls/ca.pem`,
        expect:
          /^masq: sslrootcert \(in .*\): root certificate file \/etc\/masq\/tls\/ca\.pem does not exist$/,
      },
    ]; // deno-fmt-ignore
    for (const c of cases) {
      await t.step(`${c.name}: migrate and run`, async () => {
        for (const args of [["migrate"], ["run"]]) {
          const res = await cli(args, c.url, c.env);
          const what = `${args[0]}, ${c.name}`;
          if (c.expect === ok) assertEquals(res.code, 0, `${what}: ${res.stderr}`);
          else assertConfigLine(res, c.expect as RegExp, what);
        }
      });
    }

    await t.step(
      "recover, forget, rekey and redrive say the same line for a missing or unreadable CA file",
      async () => {
        await Deno.writeTextFile(
          `${certs.dir}/new_hmac_key`,
          "3c1f8e0d9b7a65f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6\n",
        );
        const commands = [
          ["recover", "--field", "ip", "--token", "ab".repeat(32), "--reason", "tls test"],
          ["forget", "--user-id", "u1", "--reason", "tls test"],
          ["rekey", "--to-key-file", `${certs.dir}/new_hmac_key`, "--to-key-id", "k2"],
          ["redrive", "--dry-run"],
        ];
        const bad = [
          {
            ca: `${certs.dir}/none.pem`,
            line: /^masq: sslrootcert \(in .*\): root certificate file .*none\.pem does not exist$/,
          },
          {
            ca: certs.outsideCa,
            line:
              /^masq: sslrootcert \(in .*\): masq may not read .*: certificate files must be under \/etc\/masq/,
          },
        ]; // deno-fmt-ignore
        for (const args of commands) {
        for (const b of bad) {
          const res = await cli(args, tls.url({ sslmode: "verify-full", sslrootcert: b.ca }), {
            PII_VAULT_KEY: VAULT_KEY_B64,
          });
          assertConfigLine(res, b.line, `${args[0]} with ${b.ca}`);
        }
        // And with the right CA it gets past the connection (forget of an unknown user succeeds).
        if (args[0] === "forget") {
          const res = await cli(args, tls.url({ sslmode: "verify-full", sslrootcert: certs.ca }), {
            PII_VAULT_KEY: VAULT_KEY_B64,
          });
          assertEquals(res.code, 0, res.stderr);
        }
      }
      },
    );
  } finally {
    for (const undo of cleanups.reverse()) await undo().catch(() => {});
  }
});
