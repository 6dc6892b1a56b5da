import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { scramVerifier, writerLoginFrom, writerLoginSql } from "../../lib/sink/login.ts";
import { ConfigError } from "../../lib/errors.ts";

const GROUPS = ["masq_writer", "masq_analyst", "masq_privacy_officer"];
const envOf = (vars: Record<string, string>) => (name: string) => vars[name];
const noFile = (): string => {
  throw new Deno.errors.NotFound("no such file");
};

async function refusal(p: Promise<unknown>): Promise<ConfigError> {
  const err = await p.then(() => undefined, (e) => e);
  assert(err instanceof ConfigError, String(err));
  return err;
}

Deno.test("scramVerifier() gives PostgreSQL's SCRAM-SHA-256 format, salted afresh each time", async () => {
  const a = await scramVerifier("correct horse battery staple");
  const b = await scramVerifier("correct horse battery staple");
  assertMatch(a, /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
  assert(a !== b, "a new salt each time");
  const salt = new Uint8Array(16);
  assertEquals(await scramVerifier("x".repeat(20), salt), await scramVerifier("x".repeat(20), salt));
  assert(!a.includes("correct"), "the password itself is not in it");
});

Deno.test("writerLoginFrom() takes the password from MASQ_WRITER_PASSWORD or its _FILE, one of them, never too short", async () => {
  const pw = "a-writer-password-of-some-length";
  const fromEnv = await writerLoginFrom("masq_app", GROUPS, envOf({ MASQ_WRITER_PASSWORD: pw }), noFile);
  assertEquals(fromEnv.name, "masq_app");
  assertMatch(fromEnv.verifier!, /^SCRAM-SHA-256\$/);
  const fromFile = await writerLoginFrom(
    "masq_app",
    GROUPS,
    envOf({ MASQ_WRITER_PASSWORD_FILE: "/run/secrets/pw" }),
    (p) => (assertEquals(p, "/run/secrets/pw"), `${pw}\n`),
  );
  assertMatch(fromFile.verifier!, /^SCRAM-SHA-256\$/);
  assertEquals(await writerLoginFrom("masq_app", GROUPS, envOf({}), noFile), { name: "masq_app" });

  const both = await refusal(
    writerLoginFrom(
      "masq_app",
      GROUPS,
      envOf({ MASQ_WRITER_PASSWORD: pw, MASQ_WRITER_PASSWORD_FILE: "/x" }),
      noFile,
    ),
  );
  assertEquals(both.setting, "MASQ_WRITER_PASSWORD / MASQ_WRITER_PASSWORD_FILE");
  const short = await refusal(
    writerLoginFrom("masq_app", GROUPS, envOf({ MASQ_WRITER_PASSWORD: "short" }), noFile),
  );
  assertEquals(short.setting, "MASQ_WRITER_PASSWORD");
  assert(!short.message.includes("short"), "the password is not repeated");
  const missing = await refusal(
    writerLoginFrom("masq_app", GROUPS, envOf({ MASQ_WRITER_PASSWORD_FILE: "/run/secrets/none" }), noFile),
  );
  assertEquals(missing.message, "MASQ_WRITER_PASSWORD_FILE: the file does not exist");
});

Deno.test("writerLoginFrom() refuses a name that is no plain role name, or one of masq's group roles", async () => {
  for (const name of ["Masq", "app; DROP ROLE x", "", "a".repeat(64), "masq-app"]) {
    assertEquals(
      (await refusal(writerLoginFrom(name, GROUPS, envOf({}), noFile))).setting,
      "--writer-login",
      name,
    );
  }
  assertMatch(
    (await refusal(writerLoginFrom("masq_writer", GROUPS, envOf({}), noFile))).message,
    /NOLOGIN group/,
  );
});

Deno.test("writerLoginSql() makes a LOGIN member of the writer group with the search_path of this database and schema", () => {
  const sql = writerLoginSql("masq_writer", {
    name: "masq_app",
    verifier: "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5",
  });
  assertMatch(sql, /CREATE ROLE masq_app LOGIN;/);
  assertMatch(sql, /ALTER ROLE masq_app LOGIN PASSWORD 'SCRAM-SHA-256\$4096:c2FsdA==\$a2V5:a2V5';/);
  assertMatch(sql, /GRANT masq_writer TO masq_app;/);
  assertMatch(sql, /IN DATABASE %I SET search_path = %I', current_database\(\), current_schema\(\)/);
  assert(
    !writerLoginSql("masq_writer", { name: "masq_app" }).includes("PASSWORD"),
    "no verifier: password kept",
  );
});
