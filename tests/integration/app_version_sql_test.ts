/**
 * The SQL side of app_version (lib/sink/schema.ts `app_version_text()`) against a real database, agreeing
 * with lib/transform/app_version.ts. Its pure tests are in tests/transform/app_version_test.ts.
 */
import fc from "fast-check";
import { assertEquals } from "../support/assert.ts";
import { MAX_MAJOR, packAppVersion, unpackAppVersion } from "../../lib/transform/app_version.ts";
import { createSchema, startDatabase } from "../support/databases.ts";

Deno.test("app_version_text() in SQL agrees with unpackAppVersion() and the readable view shows the text", async (t) => {
  const db = await startDatabase();
  try {
    await createSchema(db);

    await t.step("app_version_text(x) = unpackAppVersion(x) on a few hundred values", async () => {
      const values = [0, 1, 999, 1000, 96000, 999999, 1000000, 2003000, 3007000, 2146999999, 2147483647];
      values.push(...fc.sample(fc.integer({ min: 0, max: 2147483647 }), { numRuns: 300, seed: 42 }));
      values.push(
        ...fc.sample(
          fc.tuple(fc.nat(MAX_MAJOR), fc.nat(999), fc.nat(999)).map((v) => packAppVersion(v.join("."))),
          { numRuns: 100, seed: 7 },
        ),
      );
      const rows = await db.query<{ x: number; t: string }>(
        "SELECT x, app_version_text(x) AS t FROM unnest($1::integer[]) AS x",
        [values],
      );
      assertEquals(rows.length, values.length);
      for (const r of rows) assertEquals(r.t, unpackAppVersion(r.x), `app_version_text(${r.x})`);
    });

    await t.step("app_version_text(NULL) is NULL", async () => {
      const rows = await db.query<{ t: string | null }>("SELECT app_version_text(NULL) AS t");
      assertEquals(rows, [{ t: null }]);
    });

    await t.step("user_logins_readable shows app_version as text", async () => {
      await db.query(
        `INSERT INTO user_logins (user_id, app_version, create_date)
         VALUES ('a', 96000, '2024-01-02'), ('b', 2003000, '2024-01-02'), ('c', NULL, '2024-01-02')`,
      );
      const rows = await db.query<{ user_id: string; app_version: string | null }>(
        "SELECT user_id, app_version FROM user_logins_readable ORDER BY user_id",
      );
      assertEquals(rows, [
        { user_id: "a", app_version: "0.96.0" },
        { user_id: "b", app_version: "2.3.0" },
        { user_id: "c", app_version: null },
      ]);
    });
  } finally {
    await db.stop();
  }
});
