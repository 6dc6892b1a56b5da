/**
 * Regression tests for bugs found while writing the unit tests. Each title says the behaviour that now holds;
 * the bug it guards against is in brackets: PII in a JSON-error reason, EPIPE taken for a SQLSTATE, secrets
 * with JSON-escaped characters, IPv4-compatible IPv6 canonicalisation, app_version reasons.
 */
import { assert, assertEquals } from "./assert.ts";
import { parseBody } from "../lib/transform/parse.ts";
import { isTransientDbError } from "../lib/sink/postgres.ts";
import { createLogger } from "../lib/log.ts";
import { canonicalIp } from "../lib/transform/mask.ts";

Deno.test("parseBody() gives an invalid-JSON reason that echoes no part of the body (was: it quoted PII)", () => {
  for (
    const body of [
      `{"ip":'199.172.111.135'}`,
      `{"user_id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaa","ip":'199.172.111.135-long-secret'}`,
      `{"a":nul, "ip":"199.172.111.135"}`,
      `x199.172.111.135-and-more-text`,
    ]
  ) {
    const r = parseBody(body);
    assert(!r.ok);
    assert(!r.reason.includes("199.17"), `reason echoes the body: ${r.reason}`);
  }
});

Deno.test("isTransientDbError() classes an EPIPE socket error as transient (was: EPIPE read as a SQLSTATE)", () => {
  const err = Object.assign(new Error("write EPIPE"), { code: "EPIPE" });
  assert(isTransientDbError(err), "EPIPE (server gone mid-write) should be retried like ECONNRESET");
});

Deno.test("createLogger() redacts a secret with a quote, backslash or control character, in text and JSON (was: leaked)", () => {
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

Deno.test("canonicalIp() keeps the IPv4-compatible ::192.0.2.1 apart from the IPv4-mapped ::ffff:192.0.2.1 (was: merged)", () => {
  // ::192.0.2.1 is ::c000:201 (RFC 4291 §2.5.5.1), a different address from ::ffff:192.0.2.1.
  assertEquals(canonicalIp("::192.0.2.1"), canonicalIp("::c000:201"));
  assert(canonicalIp("::192.0.2.1") !== canonicalIp("::ffff:192.0.2.1"));
});

Deno.test("parseBody() rejects a negative or fractional app_version with a reason naming app_version (was: unnamed)", () => {
  for (const v of [-1, 1.5]) {
    const r = parseBody(JSON.stringify({ user_id: "u", app_version: v }));
    assert(!r.ok);
    assert(r.reason.includes("app_version"), `reason does not name the field: ${r.reason}`);
  }
});
