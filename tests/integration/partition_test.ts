import { assert, assertEquals } from "../support/assert.ts";
import { seedQueue } from "../../lib/demo.ts";
import { createSchema, startDatabase } from "../support/databases.ts";
import { ROOT, runMasqCliWithin } from "../support/processes.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

const MIGRATION = Deno.readTextFileSync(`${ROOT}sql/partition_user_logins_by_create_date.sql`);

const login = (i: number, isoDate: string) =>
  JSON.stringify({
    user_id: `user-${i}`,
    app_version: "2.3.0",
    device_type: "ios",
    ip: `10.0.0.${i % 250}`,
    locale: "FR",
    device_id: `dev-${i}`,
    timestamp: Date.parse(`${isoDate}T12:00:00Z`) / 1000,
  });

Deno.test("sql/partition_user_logins_by_create_date.sql keeps rows, columns, grants and views, and masq writes into the partitions", async () => {
  const db = await startDatabase();
  const sqs = await startEmbeddedSqs();
  try {
    await createSchema(db);
    const columns = () =>
      db.query<{ column_name: string; data_type: string }>(
        `SELECT column_name, data_type FROM information_schema.columns
         WHERE table_name = 'user_logins' AND table_schema = current_schema() ORDER BY ordinal_position`,
      );
    const before = await columns();
    await db.query(
      `INSERT INTO user_logins (user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date)
       VALUES ('old-1', 'ios', 'ip1', 'dev1', 'FR', 2003000, '2024-01-15'),
              ('old-2', 'android', 'ip2', 'dev2', NULL, 1000000, '2024-03-02'),
              ('old-3', 'ios', 'ip3', 'dev3', 'PH', 1000000, NULL)`,
    );
    await db.query("GRANT SELECT ON user_logins TO PUBLIC");

    await db.query(MIGRATION);

    const kind = await db.query<{ relkind: string }>(
      "SELECT relkind FROM pg_class WHERE oid = 'user_logins'::regclass",
    );
    assertEquals(kind[0].relkind, "p");
    assertEquals(await columns(), before, "the exact column list, in order");
    const grants = await db.query<{ grantee: string; privilege_type: string }>(
      `SELECT grantee, privilege_type FROM information_schema.role_table_grants
       WHERE table_name = 'user_logins' AND table_schema = current_schema() AND grantee = 'PUBLIC'`,
    );
    assertEquals(grants.map((g) => g.privilege_type), ["SELECT"]);
    const placed = () =>
      db.query<{ part: string; user_id: string }>(
        "SELECT tableoid::regclass::text AS part, user_id FROM user_logins ORDER BY user_id",
      );
    const schemaOf = (await db.query<{ s: string }>("SELECT current_schema() AS s"))[0].s;
    const bare = (p: string) => p.replace(`${schemaOf}.`, "");
    assertEquals((await placed()).map((r) => [bare(r.part), r.user_id]), [
      ["user_logins_y2024m01", "old-1"],
      ["user_logins_y2024m03", "old-2"],
      ["user_logins_default", "old-3"],
    ]);
    // The view reads the new table.
    const viewed = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins_readable");
    assertEquals(viewed[0].n, 3);

    // Again: a no-op apart from months still missing.
    await db.query(MIGRATION);
    assertEquals((await placed()).length, 3);

    // masq writes into it, each row in its month's partition (the far future in the default one).
    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "30" });
    await seedQueue(sqs.endpoint, queueUrl, [
      login(1, "2024-01-31"),
      login(2, "2024-02-01"),
      login(3, new Date().toISOString().slice(0, 10)),
      login(4, "2099-12-31"),
    ]);
    const res = await runMasqCliWithin(120_000, ["run"], { queueUrl, databaseUrl: db.url });
    assertEquals(res.code, 0, res.stderr);
    assertEquals(res.summary?.inserted, 4);
    const now = new Date();
    const thisMonth = `user_logins_y${now.getUTCFullYear()}m${
      String(now.getUTCMonth() + 1).padStart(2, "0")
    }`;
    const rows = (await placed()).filter((r) => r.user_id.startsWith("user-"));
    assertEquals(rows.map((r) => [bare(r.part), r.user_id]), [
      ["user_logins_y2024m01", "user-1"],
      ["user_logins_y2024m02", "user-2"],
      [thisMonth, "user-3"],
      ["user_logins_default", "user-4"],
    ]);
    const parts = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'user_logins'::regclass",
    );
    assert(parts[0].n >= 14, `${parts[0].n} partitions`);
  } finally {
    await sqs.stop();
    await db.stop();
  }
});
