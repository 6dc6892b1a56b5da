import fc from "fast-check";
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { createMasker, type Masker } from "../../lib/transform/mask.ts";
import { rejectionFor, toRecord, utcDate } from "../../lib/transform/record.ts";
import { createVaultCipher, vaultAad } from "../../lib/vault.ts";
import type { Message } from "../../lib/source/sqs.ts";

const KEY = "example-key";
const IP = "199.172.111.135";
const IP_TOKEN = "68d4463fb5e0a1156f5c176f223bba4f379a141f611ba35b83f17521030f7ac6";
const DEVICE = "593-47-5928";
const DEVICE_TOKEN = "b421683efce05ff72fdb54133d11ba12cad47319a70392196edd7fb1c643f4c7";

let masker: Masker | undefined;
async function mask(): Promise<Masker> {
  return masker ??= await createMasker(KEY);
}

function message(body: string | Record<string, unknown>, sentTimestamp = Date.UTC(2024, 4, 17, 12)): Message {
  return {
    id: "msg-1",
    receiptHandle: "rh-1",
    body: typeof body === "string" ? body : JSON.stringify(body),
    sentTimestamp,
    receiveCount: 1,
  };
}

/** The name redactBody() gives a key outside the contract's vocabulary, under its parent's path. */
function unknownKey(m: Masker, key: string, path = ""): string {
  return `key_${m.token(`key.${path}`, key).slice(0, 16)}`;
}

Deno.test("toRecord() turns a valid login into a masked row", async () => {
  const rec = await toRecord(
    message({
      user_id: "424cdd21-063a-43a7-b91b-7ca1a833afae",
      app_version: "2.3.0",
      device_type: "android",
      ip: IP,
      locale: "RU",
      device_id: DEVICE,
    }),
    await mask(),
  );
  assertEquals(rec, {
    kind: "login",
    messageId: "msg-1",
    userId: "424cdd21-063a-43a7-b91b-7ca1a833afae",
    deviceType: "android",
    locale: "RU",
    maskedIp: IP_TOKEN,
    maskedDeviceId: DEVICE_TOKEN,
    appVersion: 2003000,
    createDate: "2024-05-17",
  });
  assert(!JSON.stringify(rec).includes(IP) && !JSON.stringify(rec).includes(DEVICE), "no PII in the clear");
});

Deno.test("toRecord() leaves masked columns null when ip and device_id are absent, null or empty", async () => {
  for (
    const body of [{ user_id: "u" }, { user_id: "u", ip: null, device_id: null }, {
      user_id: "u",
      ip: "",
      device_id: " ",
    }]
  ) {
    const rec = await toRecord(message(body), await mask());
    assert(rec.kind === "login");
    assertEquals([rec.maskedIp, rec.maskedDeviceId], [null, null]);
  }
});

Deno.test("toRecord() takes create_date from the timestamp when it is valid", async () => {
  const date = async (timestamp: unknown, sent = Date.UTC(2020, 0, 1)) => {
    const rec = await toRecord(message({ user_id: "u", timestamp }, sent), await mask());
    assert(rec.kind === "login");
    return rec.createDate;
  };
  assertEquals(await date(1700000000), "2023-11-14");
  assertEquals(await date("1700000000"), "2023-11-14");
  assertEquals(await date(0), "1970-01-01");
  // UTC day boundary: 86399 is the last second of 1970-01-01.
  assertEquals(await date(86399), "1970-01-01");
  assertEquals(await date(86400), "1970-01-02");
  assertEquals(await date(86399.999), "1970-01-01");
  // Invalid timestamps fall back to the SQS SentTimestamp.
  assertEquals(await date("yesterday"), "2020-01-01");
  assertEquals(await date(-1), "2020-01-01");
  assertEquals(await date(null), "2020-01-01");
});

Deno.test("toRecord() takes create_date from SentTimestamp in UTC without a timestamp", async () => {
  const date = async (sent: number) => {
    const rec = await toRecord(message({ user_id: "u" }, sent), await mask());
    assert(rec.kind === "login");
    return rec.createDate;
  };
  assertEquals(await date(Date.UTC(2024, 0, 31, 23, 59, 59, 999)), "2024-01-31");
  assertEquals(await date(Date.UTC(2024, 1, 1, 0, 0, 0, 0)), "2024-02-01");
  assertEquals(await date(Date.UTC(2024, 1, 29, 12)), "2024-02-29");
});

Deno.test("utcDate() is the UTC calendar date of epoch milliseconds", () => {
  assertEquals(utcDate(0), "1970-01-01");
  assertEquals(utcDate(Date.UTC(1999, 11, 31, 23, 59, 59, 999)), "1999-12-31");
  assertEquals(utcDate(Date.UTC(2000, 0, 1)), "2000-01-01");
});

Deno.test("utcDate() agrees with Date's own formatting for any epoch, its day cache full or not", () => {
  // Over 2,000 distinct days, so the cache of dates by day is filled and cleared along the way.
  fc.assert(
    fc.property(fc.double({ min: 0, max: 253402300799999, noNaN: true }), (ms) => {
      assertEquals(utcDate(ms), new Date(ms).toISOString().slice(0, 10));
      assertEquals(utcDate(ms), new Date(ms).toISOString().slice(0, 10));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("toRecord() rejects a bad body with its reason and a redacted copy", async () => {
  const m = await mask();
  const rec = await toRecord(message({ ip: IP, device_id: DEVICE, foo: "x" }), m);
  assertEquals(rec.kind, "rejection");
  assert(rec.kind === "rejection");
  assertEquals(rec.messageId, "msg-1");
  assertEquals(rec.reason, "user_id is missing");
  assertEquals(JSON.parse(rec.bodyRedacted!), {
    ip: IP_TOKEN,
    device_id: DEVICE_TOKEN,
    [unknownKey(m, "foo")]: m.token("body.foo", "x"),
  });
  assert(!rec.bodyRedacted!.includes(IP) && !rec.bodyRedacted!.includes(DEVICE));
});

Deno.test("toRecord() redacts device.id nested one level in a rejected body, with the column's token", async () => {
  const m = await mask();
  const rec = await toRecord(message({ user_id: 5, device: { id: DEVICE, type: "ios" }, ip: IP }), m);
  assert(rec.kind === "rejection");
  assertEquals(rec.reason, "user_id must be a string, got a number");
  assertEquals(JSON.parse(rec.bodyRedacted!), {
    user_id: m.token("body.user_id", "5"),
    device: { id: DEVICE_TOKEN, type: m.token("body.device.type", "ios") },
    ip: IP_TOKEN,
  });
});

Deno.test("toRecord() redacts both copies when device_id is given twice", async () => {
  const rec = await toRecord(
    message({ user_id: "u", device_id: DEVICE, device: { id: "other-device" } }),
    await mask(),
  );
  assert(rec.kind === "rejection");
  const m = await mask();
  assertEquals(JSON.parse(rec.bodyRedacted!), {
    user_id: "u",
    device_id: DEVICE_TOKEN,
    device: { id: m.deviceId("other-device") },
  });
});

Deno.test("toRecord() masks non-string ip and device_id values, leaving only tokens", async () => {
  const m = await mask();
  const rec = await toRecord(message({ user_id: "u", ip: { v4: IP }, device_id: 5935475928 }), m);
  assert(rec.kind === "rejection");
  assertEquals(JSON.parse(rec.bodyRedacted!), {
    user_id: "u",
    ip: { [unknownKey(m, "v4", "ip")]: IP_TOKEN },
    device_id: m.deviceId("5935475928"),
  });
  assert(!rec.bodyRedacted!.includes(IP) && !rec.bodyRedacted!.includes("5935475928"));
});

Deno.test("toRecord() keeps null and empty values, and tokenises an over-long allow-listed value", async () => {
  const m = await mask();
  const rec = await toRecord(message({ ip: null, device_id: "", locale: "x".repeat(40) }), m);
  assert(rec.kind === "rejection");
  assertEquals(JSON.parse(rec.bodyRedacted!), {
    ip: null,
    device_id: "",
    locale: m.token("body.locale", "x".repeat(40)),
  });
});

Deno.test("toRecord() with a vault cipher adds one encrypted original per masked value", async () => {
  const m = createMasker(KEY, "k9");
  const vault = await createVaultCipher(crypto.getRandomValues(new Uint8Array(32)), "v1");
  const rec = await toRecord(message({ user_id: "u", ip: ` ${IP}`, device_id: DEVICE }), m, vault);
  assert(rec.kind === "login" && rec.vault !== undefined);
  assertEquals(rec.vault.map((e) => [e.field, e.token, e.keyId]), [
    ["ip", IP_TOKEN, "k9"],
    ["device_id", DEVICE_TOKEN, "k9"],
  ]);
  assertEquals(await vault.decrypt(rec.vault[0].ciphertext, vaultAad("ip", IP_TOKEN, "k9")), ` ${IP}`);
  assertEquals(
    await vault.decrypt(rec.vault[1].ciphertext, vaultAad("device_id", DEVICE_TOKEN, "k9")),
    DEVICE,
  );
  // Bound to its row: another field's or token's context does not open it.
  await assertRejects(() => vault.decrypt(rec.vault![0].ciphertext, vaultAad("device_id", IP_TOKEN, "k9")));
  // Nothing to keep without personal values; no vault, no entries; a rejection has none.
  const bare = await toRecord(message({ user_id: "u", ip: "" }), m, vault);
  assert(bare.kind === "login" && bare.vault !== undefined && bare.vault.length === 0);
  assertEquals((await toRecord(message({ user_id: "u", ip: IP }), m)).kind === "login", true);
  assert(!("vault" in await toRecord(message({ user_id: "u", ip: IP }), m)));
  assert(!("vault" in await toRecord(message({ ip: IP }), m, vault)));
});

Deno.test("toRecord() has no redacted copy when the body is not a JSON object", async () => {
  for (const body of ["not json at all", "[1,2]", '"199.172.111.135"', "null", "42", ""]) {
    const rec = await toRecord(message(body), await mask());
    assert(rec.kind === "rejection", body);
    assertEquals(rec.bodyRedacted, null, body);
  }
});

Deno.test("toRecord() does not crash on a rejected body too deep to serialise, and leaks no PII", async () => {
  const depth = 100_000;
  const body = `{"ip":"${IP}","x":${'{"a":'.repeat(depth)}1${"}".repeat(depth)}}`;
  const rec = await toRecord(message(body), await mask());
  assert(rec.kind === "rejection");
  assertEquals(rec.reason, "body is nested deeper than 32 levels");
  assert(rec.bodyRedacted === null || !rec.bodyRedacted.includes(IP));
});

Deno.test("rejectionFor() builds a rejection with the given reason and a redacted copy", async () => {
  const reason = "database refused the row: value too long (SQLSTATE 22001)";
  const quoting = 'invalid input syntax for type integer: "10.0.0.1" near 10.0.0.2';
  assertEquals(
    rejectionFor(message({ user_id: "u" }), quoting, await mask()).reason,
    'invalid input syntax for type integer: "..." near [ip]',
  );
  assertEquals(await rejectionFor(message({ user_id: "u", ip: IP }), reason, await mask()), {
    kind: "rejection",
    messageId: "msg-1",
    reason,
    bodyRedacted: JSON.stringify({ user_id: "u", ip: IP_TOKEN }),
  });
  assertEquals(await rejectionFor(message("not json"), reason, await mask()), {
    kind: "rejection",
    messageId: "msg-1",
    reason,
    bodyRedacted: null,
  });
  assertEquals((await rejectionFor(message("[1]"), reason, await mask())).bodyRedacted, null);
});

Deno.test("toRecord() keeps a rejected body's timestamp only within 7 days of the message's SentTimestamp", async () => {
  const m = await mask();
  const sent = Date.UTC(2024, 4, 17, 12);
  const redactedTimestamp = async (timestamp: number) => {
    const rec = await toRecord(message({ user_id: 1, timestamp }, sent), m);
    assert(rec.kind === "rejection");
    return JSON.parse(rec.bodyRedacted!).timestamp;
  };
  assertEquals(await redactedTimestamp(sent / 1000 - 86_400), sent / 1000 - 86_400);
  // 3405803881 is 203.0.113.105 written as an integer (a "timestamp" in 2077).
  assertEquals(await redactedTimestamp(3405803881), m.token("body.timestamp", "3405803881"));
  const r = rejectionFor(message({ timestamp: 3405803881 }, 3405803881_000), "refused", m);
  assertEquals(
    JSON.parse(r.bodyRedacted!).timestamp,
    3405803881,
    "rejectionFor() uses the SentTimestamp too",
  );
});

Deno.test("rejectionFor() scrubs an address in any spelling and a device id from a driver's reason", async () => {
  const m = await mask();
  const reason =
    'bad value "593-47-5928" for 0xCB00716A at \u200b203.0.113.7; Key (id)=(RTM-0181) exists \u2026';
  const scrubbed = rejectionFor(message({ user_id: "u" }), reason, m).reason;
  assertEquals(scrubbed, 'bad value "..." for [ip] at [ip]; Key (id)=(...) exists ?');
});
