/**
 * Helpers for the fault tests (crash, competing consumers, shutdown): seeding synthetic messages with known
 * ids, and checking the exactly-once outcome (nothing lost, nothing doubled) in PostgreSQL and SQS.
 */
import { SendMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { isBadIndex, mulberry32, synthetic } from "../../bench/synthetic.ts";
import { type EmbeddedSqs } from "../../lib/embedded.ts";
import { queueDepth, receiveAll } from "./sqs.ts";
import { type TestDatabase } from "./databases.ts";

/** What was seeded: the user id of every good message (unique: "user-<i>") and the id of every bad one. */
export interface Seeded {
  total: number;
  goodUserIds: Set<string>;
  badIds: Set<string>;
}

/**
 * Seeds `synthetic(i, badEvery)` for i < n into `queueName`, in index order. Good bodies go straight into the
 * emulator (fast); bad ones through SendMessage, so their SQS message ids are known.
 */
export async function seedSynthetic(
  sqs: EmbeddedSqs,
  client: SQSClient,
  queueName: string,
  n: number,
  badEvery: number,
): Promise<Seeded> {
  const goodUserIds = new Set<string>();
  const badIds = new Set<string>();
  for (let i = 0; i < n; i++) {
    if (isBadIndex(i, badEvery)) {
      const res = await client.send(
        new SendMessageCommand({ QueueUrl: sqs.queueUrl(queueName), MessageBody: synthetic(i, badEvery) }),
      );
      badIds.add(res.MessageId!);
    } else {
      sqs.send(queueName, synthetic(i, badEvery));
      goodUserIds.add(`user-${i}`);
    }
  }
  return { total: n, goodUserIds, badIds };
}

/** The exactly-once verdict over user_logins, user_logins_rejected and the ledger. */
export interface Outcome {
  /** Good messages without a row plus bad messages without a rejection. */
  lost: number;
  /** Extra rows (a user id twice, or one never seeded) plus unexpected rejections. */
  doubled: number;
  rows: number;
  rejected: number;
  ledger: number;
  /** Human-readable findings, empty when the outcome is exact. */
  problems: string[];
}

function sample(xs: Iterable<string>, n = 5): string {
  return JSON.stringify([...xs].slice(0, n));
}

/** Compares what PostgreSQL holds with what was seeded (complete when the queue has been drained). */
export async function checkExactlyOnce(db: TestDatabase, seeded: Seeded): Promise<Outcome> {
  const problems: string[] = [];
  const rows = await db.query<{ user_id: string }>("SELECT user_id FROM user_logins");
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.user_id, (counts.get(r.user_id) ?? 0) + 1);
  const missingRows = [...seeded.goodUserIds].filter((u) => !counts.has(u));
  const twice = [...counts].filter(([, c]) => c > 1);
  const unknown = [...counts.keys()].filter((u) => !seeded.goodUserIds.has(u));
  if (missingRows.length) {
    problems.push(`${missingRows.length} good messages have no row, e.g. ${sample(missingRows)}`);
  }
  if (twice.length) {
    problems.push(`${twice.length} user ids have several rows, e.g. ${sample(twice.map(String))}`);
  }
  if (unknown.length) problems.push(`${unknown.length} rows were never seeded, e.g. ${sample(unknown)}`);

  const rejectedIds = (await db.query<{ message_id: string }>("SELECT message_id FROM user_logins_rejected"))
    .map((r) => r.message_id);
  const rejectedSet = new Set(rejectedIds);
  const missingRejections = [...seeded.badIds].filter((id) => !rejectedSet.has(id));
  const unexpectedRejections = rejectedIds.filter((id) => !seeded.badIds.has(id));
  if (missingRejections.length) {
    problems.push(
      `${missingRejections.length} bad messages were not rejected, e.g. ${sample(missingRejections)}`,
    );
  }
  if (unexpectedRejections.length) {
    problems.push(
      `${unexpectedRejections.length} unexpected rejections, e.g. ${sample(unexpectedRejections)}`,
    );
  }

  const ledger = await db.query<{ outcome: string; n: number }>(
    "SELECT outcome, count(*)::int AS n FROM user_logins_ledger GROUP BY outcome",
  );
  const ledgerOf = (o: string) => ledger.find((r) => r.outcome === o)?.n ?? 0;
  const ledgerTotal = ledgerOf("inserted") + ledgerOf("rejected");
  if (ledgerOf("inserted") !== seeded.goodUserIds.size || ledgerOf("rejected") !== seeded.badIds.size) {
    problems.push(
      `ledger holds ${ledgerOf("inserted")} inserted + ${
        ledgerOf("rejected")
      } rejected, expected ${seeded.goodUserIds.size} + ${seeded.badIds.size}`,
    );
  }
  return {
    lost: missingRows.length + missingRejections.length,
    doubled: twice.reduce((s, [, c]) => s + c - 1, 0) + unknown.length + unexpectedRejections.length,
    rows: rows.length,
    rejected: rejectedIds.length,
    ledger: ledgerTotal,
    problems,
  };
}

/**
 * The dead-letter queue's content: every bad message must be there (a crash between the dead-letter send
 * and the commit may forward one twice, which is allowed).
 */
export async function deadLetterIds(
  client: SQSClient,
  dlqUrl: string,
): Promise<{ ids: Set<string>; count: number }> {
  const msgs = await receiveAll(client, dlqUrl);
  return {
    ids: new Set(msgs.map((m) => m.MessageAttributes?.masq_message_id?.StringValue ?? "")),
    count: msgs.length,
  };
}

/** Rows in the ledger so far (0 while masq has not created its schema yet). */
export async function ledgerCount(db: TestDatabase): Promise<number> {
  try {
    const r = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins_ledger");
    return r[0].n;
  } catch {
    return 0;
  }
}

/** Polls `pred` every `everyMs` until it holds (true) or `timeoutMs` passes (false). */
export async function waitFor(
  pred: () => Promise<boolean> | boolean,
  timeoutMs: number,
  everyMs = 100,
): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Visible + in-flight messages of the queue (delayed are not used by these tests). */
export async function queueTotal(client: SQSClient, url: string): Promise<number> {
  const d = await queueDepth(client, url);
  return d.visible + d.inFlight;
}

/** A small seeded PRNG (mulberry32), so a failing random schedule can be replayed. */
export const prng: (seed: number) => () => number = mulberry32;
