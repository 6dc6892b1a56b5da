/**
 * lib/sink/postgres.ts against a real database (TEST_DATABASE_URL, else PGlite): the write statement's
 * idempotence and atomicity, and textArray() through PostgreSQL's text[]. Its pure tests are in
 * tests/sink/postgres_test.ts.
 */
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import {
  classify,
  createPostgresSink,
  type PostgresSink,
  sqlState,
  textArray,
} from "../../lib/sink/postgres.ts";
import fc from "fast-check";
import { silentLogger } from "../../lib/log.ts";
import { startDatabase, type TestDatabase } from "../support/databases.ts";
import { fullLogin, fullRejection, writeOne } from "../support/fakes.ts";

async function count(db: TestDatabase, table: string): Promise<number> {
  return (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0].n;
}

/** Row counts of the three tables. */
async function counts(db: TestDatabase) {
  return {
    logins: await count(db, "user_logins"),
    rejected: await count(db, "user_logins_rejected"),
    ledger: await count(db, "user_logins_ledger"),
  };
}

Deno.test("createPostgresSink() writes batches idempotently and atomically", async (t) => {
  const db = await startDatabase();
  let sink: PostgresSink | undefined;
  try {
    sink = createPostgresSink(db.url, { poolSize: 1, log: silentLogger });
    await sink.checkSchema();
    const s = sink;
    const reset = () => db.query("TRUNCATE user_logins, user_logins_rejected, user_logins_ledger");

    await t.step("migrate() creates user_logins with exactly the contract's columns", async () => {
      const cols = await db.query<{ column_name: string; data_type: string; len: number | null }>(
        `SELECT column_name, data_type, character_maximum_length AS len FROM information_schema.columns
         WHERE table_name = 'user_logins' AND table_schema = current_schema() ORDER BY ordinal_position`,
      );
      assertEquals(cols, [
        { column_name: "user_id", data_type: "character varying", len: 128 },
        { column_name: "device_type", data_type: "character varying", len: 32 },
        { column_name: "masked_ip", data_type: "character varying", len: 256 },
        { column_name: "masked_device_id", data_type: "character varying", len: 256 },
        { column_name: "locale", data_type: "character varying", len: 32 },
        { column_name: "app_version", data_type: "integer", len: null },
        { column_name: "create_date", data_type: "date", len: null },
      ]);
    });

    await t.step("write() of nothing is a no-op", async () => {
      assertEquals(await writeOne(s, []), { inserted: 0, rejected: 0, duplicates: 0 });
    });

    await t.step("write() inserts logins and rejections in one batch", async () => {
      await reset();
      const result = await writeOne(s, [
        fullLogin("m2"),
        fullRejection("m3", {
          reason: "user_id must be a string, got number 42",
          bodyRedacted: '{"user_id":42}',
        }),
        fullLogin("m1", {
          deviceType: null,
          locale: null,
          maskedIp: null,
          maskedDeviceId: null,
          appVersion: null,
        }),
        fullRejection("m4", { bodyRedacted: null }),
      ]);
      assertEquals(result, { inserted: 2, rejected: 2, duplicates: 0 });
      assertEquals(
        await db.query("SELECT * FROM user_logins ORDER BY user_id"),
        [
          {
            user_id: "user-m1",
            device_type: null,
            masked_ip: null,
            masked_device_id: null,
            locale: null,
            app_version: null,
            create_date: "2024-05-17",
          },
          {
            user_id: "user-m2",
            device_type: "android",
            masked_ip: "a".repeat(64),
            masked_device_id: "b".repeat(64),
            locale: "RU",
            app_version: 2003000,
            create_date: "2024-05-17",
          },
        ],
      );
      const rejected = await db.query<
        { message_id: string; reason: string; body_redacted: string | null; ok: boolean }
      >(
        `SELECT message_id, reason, body_redacted, rejected_at IS NOT NULL AS ok
         FROM user_logins_rejected ORDER BY message_id`,
      );
      assertEquals(rejected, [
        {
          message_id: "m3",
          reason: "user_id must be a string, got number 42",
          body_redacted: '{"user_id":42}',
          ok: true,
        },
        { message_id: "m4", reason: "user_id is missing", body_redacted: null, ok: true },
      ]);
      assertEquals(
        await db.query("SELECT message_id, outcome FROM user_logins_ledger ORDER BY message_id"),
        [
          { message_id: "m1", outcome: "inserted" },
          { message_id: "m2", outcome: "inserted" },
          { message_id: "m3", outcome: "rejected" },
          { message_id: "m4", outcome: "rejected" },
        ],
      );
    });

    await t.step("write() of the same message ids again counts duplicates and adds nothing", async () => {
      await reset();
      const batch = [fullLogin("a"), fullLogin("b"), fullRejection("c")];
      assertEquals(await writeOne(s, batch), { inserted: 2, rejected: 1, duplicates: 0 });
      assertEquals(await writeOne(s, batch), { inserted: 0, rejected: 0, duplicates: 3 });
      // A redelivery whose content now parses differently is still the same message.
      assertEquals(await writeOne(s, [fullRejection("a"), fullLogin("c")]), {
        inserted: 0,
        rejected: 0,
        duplicates: 2,
      });
      assertEquals(await counts(db), { logins: 2, rejected: 1, ledger: 3 });
    });

    await t.step("written() returns exactly the ids the ledger holds", async () => {
      await reset();
      assertEquals(await s.written(["w1", "w2"]), new Set());
      await writeOne(s, [fullLogin("w1"), fullRejection("w2")]);
      assertEquals(await s.written(["w1", "w2", "w3"]), new Set(["w1", "w2"]));
    });

    await t.step("write() of a batch mixing new and written ids writes only the new ones", async () => {
      await reset();
      assertEquals(await writeOne(s, [fullLogin("x1"), fullRejection("x2")]), {
        inserted: 1,
        rejected: 1,
        duplicates: 0,
      });
      assertEquals(
        await writeOne(s, [fullLogin("x1"), fullLogin("x3"), fullRejection("x2"), fullRejection("x4")]),
        { inserted: 1, rejected: 1, duplicates: 2 },
      );
      assertEquals(await counts(db), { logins: 2, rejected: 2, ledger: 4 });
      const users = await db.query<{ user_id: string }>("SELECT user_id FROM user_logins ORDER BY 1");
      assertEquals(users.map((r) => r.user_id), ["user-x1", "user-x3"]);
    });

    await t.step("write() counts a message id repeated inside one batch as a duplicate", async () => {
      await reset();
      assertEquals(
        await writeOne(s, [
          fullLogin("d1"),
          fullLogin("d1"),
          fullRejection("d2"),
          fullRejection("d2"),
          fullLogin("d2"),
        ]),
        { inserted: 1, rejected: 1, duplicates: 3 },
      );
      assertEquals(await counts(db), { logins: 1, rejected: 1, ledger: 2 });
    });

    await t.step("write() stores text literally, whatever it looks like", async () => {
      await reset();
      const hostile = ["'; DROP TABLE user_logins; --", "x' OR '1'='1", "$1", "\\x00", "ü\u{1F600}"];
      await writeOne(s, hostile.map((h, i) => fullLogin(`h${i}`, { userId: h, locale: h.slice(0, 32) })));
      const rows = await db.query<{ user_id: string; locale: string }>(
        "SELECT user_id, locale FROM user_logins",
      );
      assertEquals(rows.map((r) => r.user_id).sort(), [...hostile].sort());
      for (const r of rows) assertEquals(r.locale, r.user_id);
    });

    await t.step(
      "write() raises a data error for a row the database refuses, and commits nothing of the batch",
      async () => {
        await reset();
        await db.query(
          "ALTER TABLE user_logins ADD CONSTRAINT test_only_refuse CHECK (user_id <> 'refuse-me')",
        );
        try {
          const err = await assertRejects(() =>
            writeOne(s, [fullLogin("ok1"), fullLogin("bad", { userId: "refuse-me" }), fullRejection("r1")])
          );
          assertEquals(sqlState(err), "23514");
          assert(classify(err) === "data", "a check violation is a data error");
          assert(classify(err) !== "transient", "a check violation is not transient");
          assertEquals(await counts(db), { logins: 0, rejected: 0, ledger: 0 });
          // Without the refused row, the rest goes through.
          assertEquals(await writeOne(s, [fullLogin("ok1"), fullRejection("r1")]), {
            inserted: 1,
            rejected: 1,
            duplicates: 0,
          });
        } finally {
          await db.query("ALTER TABLE user_logins DROP CONSTRAINT test_only_refuse");
        }
      },
    );

    await t.step("write() raises a data error for a value longer than its column", async () => {
      await reset();
      const err = await assertRejects(() => writeOne(s, [fullLogin("long", { userId: "u".repeat(129) })]));
      assertEquals(sqlState(err), "22001");
      assert(classify(err) === "data");
      assertEquals(await counts(db), { logins: 0, rejected: 0, ledger: 0 });
      assertEquals(await writeOne(s, [fullLogin("long", { userId: "u".repeat(128) })]), {
        inserted: 1,
        rejected: 0,
        duplicates: 0,
      });
    });

    await t.step(
      "writeBatches() commits several batches in one statement and counts each batch apart",
      async () => {
        await reset();
        await writeOne(s, [fullLogin("old")]);
        const results = await s.writeBatches([
          [fullLogin("b1"), fullRejection("b2")],
          [],
          [fullLogin("old"), fullLogin("b3"), fullLogin("b1")],
          [fullRejection("b4"), fullRejection("b5")],
        ]);
        assertEquals(results, [
          { inserted: 1, rejected: 1, duplicates: 0 },
          { inserted: 0, rejected: 0, duplicates: 0 },
          { inserted: 1, rejected: 0, duplicates: 2 },
          { inserted: 0, rejected: 2, duplicates: 0 },
        ]);
        assertEquals(await counts(db), { logins: 3, rejected: 3, ledger: 6 });
        const commits = await db.query<{ n: number }>(
          "SELECT count(DISTINCT written_at)::int AS n FROM user_logins_ledger WHERE message_id <> 'old'",
        );
        assertEquals(commits[0].n, 1, "one transaction");
      },
    );

    await t.step("write() stores each vault entry once and never overwrites one", async () => {
      await reset();
      await db.query("TRUNCATE pii_vault");
      const entry = (ct: number) => ({
        field: "ip" as const,
        token: "tok",
        ciphertext: new Uint8Array([ct, 2]),
        keyId: "v1",
      });
      await writeOne(s, [fullLogin("v1", { vault: [entry(1)] }), fullLogin("v2", { vault: [entry(9)] })]);
      await writeOne(s, [fullLogin("v3", { vault: [entry(7), { ...entry(3), field: "device_id" }] })]);
      const rows = await db.query<{ field: string; token: string; ct: string; key_id: string }>(
        "SELECT field, token, encode(ciphertext, 'hex') AS ct, key_id FROM pii_vault ORDER BY field",
      );
      assertEquals(rows, [
        { field: "device_id", token: "tok", ct: "0302", key_id: "v1" },
        { field: "ip", token: "tok", ct: "0102", key_id: "v1" },
      ]);
    });
  } finally {
    await sink?.close();
    await db.stop();
  }
});

Deno.test("textArray() round-trips any strings and nulls through PostgreSQL's text[] unchanged", async () => {
  const db = await startDatabase({ migrated: false });
  try {
    const element = fc.oneof(
      fc.constant(null),
      fc.constantFrom("NULL", "", " ", "{}", "a,b", '"', "\\", '\\"', '{"x"}', "é", "😀"),
      fc.string({ unit: "grapheme", maxLength: 20 }),
      fc.string({ maxLength: 20 }),
    ).filter((x) => x === null || (!x.includes("\u0000") && x.isWellFormed()));
    await fc.assert(
      fc.asyncProperty(fc.array(element, { maxLength: 12 }), async (values) => {
        const [row] = await db.query<{ a: (string | null)[] }>("SELECT $1::text[] AS a", [textArray(values)]);
        assertEquals(row.a, values);
      }),
      { numRuns: 300 },
    );
  } finally {
    await db.stop();
  }
});
