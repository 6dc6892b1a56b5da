/**
 * Shared helpers for the integration tests: a PostgreSQL per test (a fresh schema on TEST_DATABASE_URL,
 * else an embedded PGlite), an embedded SQS (fauxqs), and the real masq CLI as a subprocess.
 */
import pg from "pg";
import { GetQueueAttributesCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { type EmbeddedSqs, startEmbeddedPostgres, startEmbeddedSqs } from "../../lib/embedded.ts";
import { createSqsClient } from "../../lib/source/sqs.ts";
import { pgTypes } from "../../lib/sink/postgres.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const MAIN = `${ROOT}main.ts`;
export const TEST_KEY = "example-key";

/** The permissions of `deno task start`, read from deno.json so the tests run what users run. */
export function runPermissions(): string[] {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<string, string>;
  const home = Deno.env.get("HOME") ?? "";
  return tasks.start.split(" ").filter((a) => a.startsWith("--allow-")).map((a) =>
    a.replaceAll("$HOME", home)
  );
}

export interface TestDatabase {
  /** URL for masq (search_path set to the test's schema on a real server). */
  url: string;
  kind: "postgresql" | "pglite";
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  stop(): Promise<void>;
}

/** A fresh, isolated database for one test. */
export async function startDatabase(): Promise<TestDatabase> {
  const base = Deno.env.get("TEST_DATABASE_URL");
  if (base) {
    const schema = `masq_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const admin = new pg.Client({ connectionString: base, types: pgTypes });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.query(`SET search_path = ${schema}`);
    const u = new URL(base);
    u.searchParams.set("options", `-c search_path=${schema}`);
    return {
      url: u.toString(),
      kind: "postgresql",
      async query<T>(sql: string, params?: unknown[]) {
        return (await admin.query(sql, params)).rows as T[];
      },
      async stop() {
        await admin.query(`DROP SCHEMA ${schema} CASCADE`);
        await admin.end();
      },
    };
  }
  const pgl = await startEmbeddedPostgres();
  const client = new pg.Client({ connectionString: pgl.url, types: pgTypes });
  await client.connect();
  return {
    url: pgl.url,
    kind: "pglite",
    async query<T>(sql: string, params?: unknown[]) {
      return (await client.query(sql, params)).rows as T[];
    },
    async stop() {
      await client.end();
      await pgl.stop();
    },
  };
}

export { type EmbeddedSqs, startEmbeddedSqs };

export function sqsClient(sqs: { endpoint: string }): SQSClient {
  return createSqsClient({ endpoint: sqs.endpoint, region: "us-east-1" }, "json");
}

/** Visible + in-flight + delayed messages of a queue. */
export async function queueDepth(
  client: SQSClient,
  url: string,
): Promise<{ visible: number; inFlight: number }> {
  const res = await client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["All"] }));
  return {
    visible: Number(res.Attributes?.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(res.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
  };
}

/** Receives everything visible in a queue (for inspecting the dead-letter queue). */
export async function receiveAll(client: SQSClient, url: string) {
  const out = [];
  for (;;) {
    const res = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageAttributeNames: ["All"],
        VisibilityTimeout: 60,
      }),
    );
    if (!res.Messages?.length) return out;
    out.push(...res.Messages);
  }
}

export interface MasqResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The parsed last stdout line, when it is JSON. */
  summary: Record<string, number> | undefined;
}

export interface MasqEnv {
  queueUrl: string;
  databaseUrl: string;
  extra?: Record<string, string>;
}

function masqEnv(e: MasqEnv): Record<string, string> {
  return {
    SQS_QUEUE_URL: e.queueUrl,
    DATABASE_URL: e.databaseUrl,
    PII_HMAC_KEY: TEST_KEY,
    NO_COLOR: "1",
    HOME: Deno.env.get("HOME") ?? "/root",
    PATH: Deno.env.get("PATH") ?? "",
    ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
    ...e.extra,
  };
}

/** Spawns `masq <args>` (the real CLI, task permissions) with a clean environment. */
export function spawnMasq(args: string[], e: MasqEnv): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...runPermissions(), MAIN, ...args],
    env: masqEnv(e),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    cwd: ROOT,
  }).spawn();
}

function lastJson(stdout: string): Record<string, number> | undefined {
  const last = stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(last);
  } catch {
    return undefined;
  }
}

/** Runs `masq <args>` to completion. */
export async function runMasqCli(args: string[], e: MasqEnv): Promise<MasqResult> {
  const out = await spawnMasq(args, e).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  return { code: out.code, stdout, stderr, summary: lastJson(stdout) };
}

/** Collects a child's output after it ends (for spawned processes). */
export async function collect(child: Deno.ChildProcess): Promise<MasqResult> {
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  return { code: out.code, stdout, stderr: new TextDecoder().decode(out.stderr), summary: lastJson(stdout) };
}
