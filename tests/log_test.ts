import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { createLogger, type LoggerOptions, redact } from "../lib/log.ts";

/** A logger whose lines are collected instead of written to stderr. */
function capture(opts: LoggerOptions = {}) {
  const lines: string[] = [];
  return { lines, log: createLogger({ ...opts, write: (l) => lines.push(l) }) };
}

Deno.test("redact() replaces every occurrence of each secret, raw and URL-encoded", () => {
  assertEquals(redact("a s3cret b s3cret", ["s3cret"]), "a *** b ***");
  assertEquals(redact("postgres://u:p%40ss@h/d and p@ss", ["p@ss"]), "postgres://u:***@h/d and ***");
  assertEquals(redact("k3y and s3cret", ["k3y", "s3cret"]), "*** and ***");
  assertEquals(redact("nothing here", ["s3cret"]), "nothing here");
});

Deno.test("redact() replaces secrets of any length, longest first, and ignores an empty one", () => {
  assertEquals(redact("a b ab", ["a", ""]), "*** b ***b");
  assertEquals(redact("x pw1 pw12", ["pw1", "pw12"]), "x *** ***");
});

Deno.test("createLogger() writes text lines with level, message and key=value fields", () => {
  const { lines, log } = capture();
  log.info("batch written", {
    messages: 10,
    queue: "login queue",
    ok: true,
    none: null,
    err: new Error("boom"),
  });
  assertEquals(lines.length, 1);
  assertMatch(
    lines[0],
    /^\d\d:\d\d:\d\d\.\d{3} INFO {2}batch written messages=10 queue="login queue" ok=true none=null err="boom"$/,
  );
  log.warn("plain");
  assertMatch(lines[1], /^\d\d:\d\d:\d\d\.\d{3} WARN {2}plain$/);
});

Deno.test("createLogger() writes one JSON object per line with --log-format json", () => {
  const { lines, log } = capture({ format: "json" });
  log.error("database unreachable", { attempt: 3, error: new Error("connect ECONNREFUSED") });
  assertEquals(lines.length, 1);
  const rec = JSON.parse(lines[0]);
  assertEquals({ ...rec, time: "T" }, {
    time: "T",
    level: "error",
    msg: "database unreachable",
    attempt: 3,
    error: "connect ECONNREFUSED",
  });
  assert(!Number.isNaN(Date.parse(rec.time)), "time is an ISO timestamp");
});

Deno.test("createLogger() redacts secrets in the message and the fields, in text format", () => {
  const { lines, log } = capture({ secrets: ["hunter2", "k3y-material"] });
  log.error("auth failed with hunter2", {
    error: new Error("password hunter2 rejected"),
    url: "postgres://app:hunter2@db/x",
    key: "k3y-material",
  });
  assertEquals(lines.length, 1);
  assert(!lines[0].includes("hunter2") && !lines[0].includes("k3y-material"), lines[0]);
  assertMatch(
    lines[0],
    /auth failed with \*\*\* error="password \*\*\* rejected" url=postgres:\/\/app:\*\*\*@db\/x key=\*\*\*$/,
  );
});

Deno.test("createLogger() redacts secrets in the message and the fields, in json format", () => {
  const { lines, log } = capture({ format: "json", secrets: ["hunter2", "p@ss"] });
  log.warn("retrying hunter2", {
    error: new Error("bad hunter2"),
    url: "postgres://a:p%40ss@h/d",
    raw: "p@ss",
  });
  const rec = JSON.parse(lines[0]);
  assertEquals(rec.msg, "retrying ***");
  assertEquals(rec.error, "bad ***");
  assertEquals(rec.url, "postgres://a:***@h/d");
  assertEquals(rec.raw, "***");
});

Deno.test("createLogger() drops lines below its level", () => {
  const { lines, log } = capture({ level: "warn", format: "json" });
  log.debug("d");
  log.info("i");
  log.warn("w");
  log.error("e");
  assertEquals(lines.map((l) => JSON.parse(l).level), ["warn", "error"]);
  const all = capture({ level: "debug" });
  all.log.debug("d");
  assertEquals(all.lines.length, 1);
  const def = capture();
  def.log.debug("d");
  def.log.info("i");
  assertEquals(def.lines.length, 1, "info is the default level");
});

Deno.test("createLogger() redacts a secret with a quote, backslash or control character, in text and JSON", () => {
  for (const secret of ['pa"ss', "pa\\ss", "pa\tss"]) {
    for (const format of ["text", "json"] as const) {
      const lines: string[] = [];
      const log = createLogger({ format, secrets: [secret], write: (l) => lines.push(l) });
      log.error(`failed for ${secret}`, { error: new Error(`password ${secret} rejected`) });
      const leaked = lines[0].includes(JSON.stringify(secret).slice(1, -1)) || lines[0].includes(secret);
      assert(!leaked, `${format} leaks ${JSON.stringify(secret)}: ${lines[0]}`);
    }
  }
});
