/**
 * The proof the "hostile producers" issue asks for: a corpus of hostile bodies and message attributes
 * (tests/support/hostile_corpus.ts: every known trick, hand-written, plus generated ones) goes through
 * the real CLI between the SQS emulator and real PostgreSQL, with and without a vault key; then a pg_dump
 * of the test's schema, every dead letter (body and attributes), stdout and stderr (at --log-level debug)
 * are searched for every planted address and device id, as written, as the outputs escape it (JSON \u
 * escapes, pg_dump's doubled backslashes) and as findAddress() reads it (NFKC, invisible characters
 * dropped, digits of every script as ASCII).
 */
import fc from "fast-check";
import { SendMessageBatchCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { assert, assertEquals } from "../support/assert.ts";
import { addressText } from "../../lib/transform/address.ts";
import { toBase64 } from "../../lib/vault.ts";
import {
  attributeProbes,
  generatedBody,
  handWrittenBodies,
  type HostileBody,
} from "../support/hostile_corpus.ts";
import { collect, runMasqCli, spawnWatched } from "../support/processes.ts";
import { receiveAll, sqsClient } from "../support/sqs.ts";
import { startDatabase, type TestDatabase } from "../support/databases.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

const SEED = Number(Deno.env.get("MASQ_HOSTILE_SEED") ?? Date.now() % 1_000_000);

interface Outgoing {
  name: string;
  body: string;
  attributes?: Record<string, string>;
  planted: string[];
  outcome?: "inserted" | "rejected";
}

/**
 * The emulator refuses characters outside the BMP (real SQS takes them): in a JSON body, where they can only
 * stand in strings, they are sent as the \u escapes of their surrogates, which JSON.parse reads back the same.
 */
function sendable(body: string): string {
  return body.replace(
    /[\u{10000}-\u{10ffff}]/gu,
    (c) => [...c.split("")].map((u) => `\\u${u.charCodeAt(0).toString(16)}`).join(""),
  );
}

/** Sends messages ten per SendMessageBatch (with their attributes), returning the SQS message ids in order. */
async function send(client: SQSClient, queueUrl: string, messages: readonly Outgoing[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < messages.length; i += 10) {
    const chunk = messages.slice(i, i + 10);
    const res = await client.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: chunk.map((m, j) => ({
          Id: String(j),
          MessageBody: sendable(m.body),
          ...(m.attributes
            ? {
              MessageAttributes: Object.fromEntries(
                Object.entries(m.attributes).map(([k, v]) => [k, { DataType: "String", StringValue: v }]),
              ),
            }
            : {}),
        })),
      }),
    );
    assertEquals(res.Failed ?? [], [], `sending ${chunk.map((m) => m.name).join(", ")}`);
    const byEntry = new Map((res.Successful ?? []).map((s) => [s.Id, s.MessageId!]));
    chunk.forEach((_, j) => ids.push(byEntry.get(String(j))!));
  }
  return ids;
}

function schemaOf(db: TestDatabase): string {
  return /search_path=(\w+)/.exec(new URL(db.url).searchParams.get("options") ?? "")![1];
}

/** Everything stored: pg_dump of the test's schema (data and definitions). */
async function pgDump(db: TestDatabase): Promise<string> {
  const base = Deno.env.get("TEST_DATABASE_URL");
  if (base === undefined || db.kind !== "postgresql") {
    const tables = await db.query<{ name: string }>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()",
    );
    let all = "";
    for (const t of tables) all += JSON.stringify(await db.query(`SELECT * FROM "${t.name}"`));
    return all;
  }
  const out = await collect(
    spawnWatched("/usr/bin/pg_dump", ["--schema", schemaOf(db), "--no-owner", base], { timeoutMs: 60_000 }),
  );
  assertEquals(out.code, 0, out.stderr);
  return out.stdout;
}

/** Undoes the escapes outputs use: pg_dump's doubled backslashes, then JSON's \uXXXX. */
function unescaped(text: string): string {
  return text.replaceAll("\\\\", "\\").replace(
    /\\u([0-9a-fA-F]{4})/g,
    (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)),
  );
}

/** The planted values found in `text`: as written, unescaped, or as findAddress() reads both. */
function leaked(planted: Iterable<string>, text: string): string[] {
  const plain = unescaped(text);
  const read = addressText(plain);
  return [...new Set(planted)].filter((p) =>
    text.includes(p) || plain.includes(p) || read.includes(addressText(p))
  );
}

interface Outcome {
  /** [where, text] of every place masq writes to. */
  places: Array<[string, string]>;
  /** SQS message id -> ledger outcome. */
  ledger: Map<string, string>;
  ids: string[];
  rows: number;
  rejections: number;
  users: string[];
  vaulted: number;
  letters: number;
  lettersWithOriginal: number;
  received: number | undefined;
  stderr: string;
}

/** Sends `messages`, runs `masq run` to the end of the queue, and gathers everything it wrote. */
async function throughMasq(messages: readonly Outgoing[], withVault: boolean): Promise<Outcome> {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  try {
    const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "60" });
    const ids = await send(client, queueUrl, messages);
    const vaultKey = toBase64(crypto.getRandomValues(new Uint8Array(32)));
    const res = await runMasqCli(["run", "--log-level", "debug", "--concurrency", "2"], {
      queueUrl,
      databaseUrl: db.url,
      ...(withVault ? { extra: { PII_VAULT_KEY: vaultKey } } : {}),
    }, { timeoutMs: 240_000 });
    assertEquals(res.code, 0, res.stderr.slice(-4000));
    const letters = await receiveAll(client, `${queueUrl}-dlq`);
    const dlq = letters.map((m) => JSON.stringify({ body: m.Body, attributes: m.MessageAttributes })).join(
      "\n",
    );
    const ledger = new Map(
      (await db.query<{ message_id: string; outcome: string }>(
        "SELECT message_id, outcome FROM user_logins_ledger",
      ))
        .map((r) => [r.message_id, r.outcome]),
    );
    const [{ rows, rejections, vaulted }] = await db.query<
      { rows: number; rejections: number; vaulted: number }
    >(
      `SELECT (SELECT count(*) FROM user_logins)::int AS rows,
              (SELECT count(*) FROM user_logins_rejected)::int AS rejections,
              (SELECT count(*) FROM pii_vault)::int AS vaulted`,
    );
    const users = (await db.query<{ user_id: string }>("SELECT user_id FROM user_logins")).map((r) =>
      r.user_id
    );
    return {
      places: [
        ["PostgreSQL (pg_dump)", await pgDump(db)],
        ["the dead-letter queue (bodies and attributes)", dlq],
        ["stdout", res.stdout],
        ["stderr", res.stderr],
      ],
      ledger,
      ids,
      rows,
      rejections,
      users,
      vaulted,
      letters: letters.length,
      lettersWithOriginal: letters.filter((l) => l.MessageAttributes?.masq_original?.StringValue).length,
      received: res.summary?.received,
      stderr: res.stderr,
    };
  } finally {
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
}

/** Every problem with an outcome, as lines (one failed assertion lists all of them). */
function problems(messages: readonly Outgoing[], out: Outcome, withVault: boolean): string[] {
  const found: string[] = [];
  const planted = messages.flatMap((m) => m.planted);
  for (const [where, text] of out.places) {
    for (const value of leaked(planted, text)) {
      const from = messages.filter((m) => m.planted.includes(value)).map((m) => m.name);
      found.push(`${JSON.stringify(value)} is in ${where} (planted by: ${from.slice(0, 3).join("; ")})`);
    }
  }
  if (out.received !== messages.length) found.push(`received ${out.received}, sent ${messages.length}`);
  if (out.rows + out.rejections !== messages.length) {
    found.push(`${out.rows} rows + ${out.rejections} rejections for ${messages.length} messages sent`);
  }
  messages.forEach((m, i) => {
    const got = out.ledger.get(out.ids[i]);
    if (m.outcome !== undefined && got !== m.outcome) {
      found.push(`${m.name}: ${got ?? "no ledger entry under its SQS message id"}, expected ${m.outcome}`);
    }
  });
  if (out.letters !== out.rejections) {
    found.push(`${out.letters} dead letters for ${out.rejections} rejections`);
  }
  if (withVault && out.lettersWithOriginal !== out.letters) {
    found.push("a dead letter without its encrypted original");
  }
  if (!withVault && (out.lettersWithOriginal > 0 || out.vaulted > 0)) {
    found.push("something reversible without a key");
  }
  return found;
}

Deno.test({
  name: "masq run keeps no planted address or device id from hostile bodies, with and without a vault key",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    for (const withVault of [false, true]) {
      const generated = fc.sample(generatedBody, { seed: SEED + Number(withVault), numRuns: 150 });
      const messages: HostileBody[] = [...handWrittenBodies(), ...generated];
      const out = await throughMasq(messages, withVault);
      assert(out.rows > 10 && out.rejections > 100, `${out.rows} rows, ${out.rejections} rejections`);
      assertEquals(problems(messages, out, withVault), [], `vault ${withVault}, seed ${SEED}`);
    }
  },
});

Deno.test({
  name: "masq run neither trusts nor keeps producer-set masq_* message attributes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    for (const withVault of [false, true]) {
      const probes = attributeProbes();
      const out = await throughMasq(probes, withVault);
      const found = problems(probes, out, withVault);
      // One masq_redrive_id on three different logins: three logins, three rows.
      const collided = out.users.filter((u) => u.startsWith("collide-user-")).sort();
      if (collided.length !== 3) {
        found.push(`the three "collide-1" logins gave rows for ${JSON.stringify(collided)}`);
      }
      assertEquals(found, [], `vault ${withVault}`);
    }
  },
});
