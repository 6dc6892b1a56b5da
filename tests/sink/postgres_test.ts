import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import {
  classify,
  connectionAdvice,
  isPreparedStatementClash,
  isStatementTimeout,
  sqlState,
  textArray,
  toParameters,
  WRITE_STATEMENT_NAME,
} from "../../lib/sink/postgres.ts";
import { ConfigError } from "../../lib/errors.ts";
import { fullLogin, fullRejection } from "../support/fakes.ts";

Deno.test("classify() of the sink: data for classes 22 and 23, transient for outages, fatal for bugs and the rest", () => {
  assertEquals(classify(pgError("23514")), "data");
  assertEquals(classify(pgError("22P05")), "data");
  assertEquals(classify(pgError("57P01")), "transient");
  assertEquals(classify(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" })), "transient");
  assertEquals(classify(pgError("42P01")), "fatal");
  assertEquals(classify(pgError("42501")), "fatal");
  assertEquals(classify(new TypeError("x is not a function")), "fatal");
  assertEquals(classify(new RangeError("bad")), "fatal");
  assertEquals(classify("08006"), "fatal");
});

function pgError(code: string): Error {
  return Object.assign(new Error(`error ${code}`), { code });
}

Deno.test("classify() of the sink calls SQLSTATE classes 22 and 23 data, and nothing else", () => {
  for (const code of ["22001", "22P02", "22021", "23505", "23514", "23502"]) {
    assert(classify(pgError(code)) === "data", code);
  }
  for (const code of ["08006", "40001", "42P01", "53300", "57P01", "XX000"]) {
    assert(classify(pgError(code)) !== "data", code);
  }
  assert(classify(new Error("no code")) !== "data");
  assert(classify("22001") !== "data");
  assert(classify(undefined) !== "data");
});

Deno.test("classify() of the sink calls outage SQLSTATEs transient", () => {
  for (
    const code of [
      "08000",
      "08003",
      "08006",
      "08001",
      "53300",
      "53200",
      "57P01",
      "57P02",
      "57P03",
      "40001",
      "40P01",
      "55P03",
      "57014",
    ]
  ) {
    assert(classify(pgError(code)) === "transient", code);
  }
});

Deno.test("classify() of the sink never calls an error a retry cannot fix transient", () => {
  for (
    const code of ["22001", "23505", "23514", "42P01", "42601", "42501", "28P01", "3D000", "XX000", "0A000"]
  ) {
    assert(classify(pgError(code)) !== "transient", code);
  }
});

Deno.test("classify() of the sink calls socket-level Errors transient, bugs and non-Errors not", () => {
  assert(classify(new Error("Connection terminated unexpectedly")) === "transient");
  assert(
    classify(
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }),
    ) === "transient",
  );
  assert(classify(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" })) === "transient");
  assert(classify(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })) === "transient");
  assert(classify(new TypeError("x is not a function")) !== "transient");
  assert(classify(new RangeError("bad")) !== "transient");
  assert(classify("08006") !== "transient");
  assert(classify(null) !== "transient");
});

Deno.test("sqlState() reads a five-character SQLSTATE code only", () => {
  assertEquals(sqlState(pgError("23505")), "23505");
  assertEquals(sqlState(pgError("57P01")), "57P01");
  assertEquals(sqlState(Object.assign(new Error(), { code: "ECONNREFUSED" })), undefined);
  assertEquals(sqlState(Object.assign(new Error(), { code: 23505 })), undefined);
  assertEquals(sqlState(undefined), undefined);
});

Deno.test("toParameters() sorts by message id, keeps the first of repeated ids with its batch, and fills column arrays", () => {
  const cols = toParameters([
    [fullLogin("m3", { userId: "third" }), fullRejection("m1", { reason: "r1", bodyRedacted: "{}" })],
    [fullLogin("m2", { userId: "second", appVersion: null }), fullLogin("m3", { userId: "third again" })],
    [fullRejection("m1", { reason: "r1 again" })],
  ]);
  assertEquals(cols.length, 17);
  for (const c of cols.slice(0, 12)) assertEquals(c.length, 3);
  assertEquals(cols[0], [0, 1, 0]);
  assertEquals(cols[1], ["m1", "m2", "m3"]);
  assertEquals(cols[2], ["rejected", "inserted", "inserted"]);
  assertEquals(cols[3], [null, "second", "third"]);
  assertEquals(cols[8], [null, null, 2003000]);
  assertEquals(cols[9], [null, "2024-05-17", "2024-05-17"]);
  assertEquals(cols[10], ["r1", null, null]);
  assertEquals(cols[11], ["{}", null, null]);
  for (const c of cols.slice(12)) assertEquals(c, []);
  assertEquals(toParameters([]), Array.from({ length: 17 }, () => []));
});

Deno.test("toParameters() gives each vault entry once, as hex", () => {
  const entry = { field: "ip" as const, token: "t1", ciphertext: new Uint8Array([0, 1, 255]), keyId: "v1" };
  const cols = toParameters([[fullLogin("m1", { vault: [entry] }), fullLogin("m2", { vault: [entry] })]]);
  assertEquals(cols.slice(12), [["ip"], ["t1"], ["0001ff"], ["v1"], [""]]);
});

Deno.test("textArray() quotes every element, escapes only quote and backslash, and writes null as NULL", () => {
  assertEquals(textArray([]), "{}");
  assertEquals(
    textArray(["a", null, 'say "hi"', "c:\\x", 7, "NULL", ""]),
    '{"a",NULL,"say \\"hi\\"","c:\\\\x","7","NULL",""}',
  );
});

Deno.test("classify() of the sink calls an EPIPE socket error transient, not a SQLSTATE", () => {
  const err = Object.assign(new Error("write EPIPE"), { code: "EPIPE" });
  assertEquals(classify(err), "transient", "EPIPE (server gone mid-write) is retried like ECONNRESET");
});

Deno.test("isStatementTimeout() is any 57014 (the server's words depend on its lc_messages), nothing else", () => {
  const err = (message: string, code: string) => Object.assign(new Error(message), { code });
  assert(isStatementTimeout(err("canceling statement due to statement timeout", "57014")));
  assert(isStatementTimeout(err("Abbruch der Anweisung wegen Zeitüberschreitung", "57014")));
  assert(!isStatementTimeout(err("canceling statement due to lock timeout", "55P03")));
  assert(!isStatementTimeout(new Error("statement timeout")));
});

Deno.test("isPreparedStatementClash() is a missing (26000) or taken (42P05) statement name", () => {
  const err = (code: string) => Object.assign(new Error("x"), { code });
  assert(isPreparedStatementClash(err("26000")) && isPreparedStatementClash(err("42P05")));
  assert(!isPreparedStatementClash(err("42P01")) && !isPreparedStatementClash(new Error("26000")));
  assertMatch(WRITE_STATEMENT_NAME, /^masq_write_[0-9a-f]{8}$/);
});

Deno.test("connectionAdvice() explains PgBouncer's refusal of options and its full pool, and nothing else", () => {
  assertMatch(
    connectionAdvice(new Error("unsupported startup parameter: options")),
    /ALTER ROLE <login> IN DATABASE <db> SET search_path = <schema>.*migrate --writer-login/,
  );
  assertMatch(connectionAdvice(new Error("query_wait_timeout")), /--db-pool-size.*docs\/postgres\.md/);
  assertEquals(connectionAdvice(new Error("connect ECONNREFUSED 127.0.0.1:6432")), "");
});

Deno.test("classify() of the sink calls a ConfigError fatal: the operator's to fix, never retried", () => {
  assertEquals(
    classify(new ConfigError("--db-named-statements / MASQ_DB_NAMED_STATEMENTS", "is on")),
    "fatal",
  );
});
