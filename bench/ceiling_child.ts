/**
 * The ceiling: the least any consumer of the queue must do. `concurrency` receivers send the request masq
 * sends (ten messages, the same wait and attributes) and hand each batch to a DeleteMessageBatch they do
 * not wait for, so that receiving never waits on deleting; like masq, they stop receiving while
 * `inFlightBound` messages are received and not yet deleted. The same SDK client factory as masq; until
 * the queue is drained; nothing else. A process of its own, started by bench/runner.ts with the permissions of
 * `deno task start`; settings and report over stdin/stdout (bench/measure.ts); with `profile`, a CPU
 * profile of the run is written there and a heap profile beside it (bench/profile.ts).
 *
 * @module
 */
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
} from "@aws-sdk/client-sqs";
import { createSqsClient, RECEIVE_MESSAGE_ATTRIBUTES } from "../lib/source/sqs.ts";
import { createMeter, handshake } from "./measure.ts";
import { saveProfile, startProfiler } from "./profile.ts";

/** The ceiling child's settings. */
export interface CeilingSettings {
  queueUrl: string;
  endpoint: string;
  concurrency: number;
  /** masq's default wait when not following: a drained queue is noticed after this long. */
  waitSeconds: number;
  /** Messages received and not yet deleted, at most (masq's bound for the same concurrency). */
  inFlightBound: number;
  /** Where to write a CPU profile of the run; none when absent. */
  profile?: string;
}

const { settings, ready } = await handshake<CeilingSettings>();
const client = createSqsClient({ endpoint: settings.endpoint, region: "us-east-1" }, "json");
const meter = createMeter();
const halt = new AbortController();

async function drained(): Promise<boolean> {
  const res = await client.send(
    new GetQueueAttributesCommand({
      QueueUrl: settings.queueUrl,
      AttributeNames: [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
      ],
    }),
  );
  const a = res.Attributes ?? {};
  return Number(a.ApproximateNumberOfMessages ?? 0) + Number(a.ApproximateNumberOfMessagesNotVisible ?? 0) +
      Number(a.ApproximateNumberOfMessagesDelayed ?? 0) === 0;
}

// Room for messages in flight: a receiver reserves ten before it asks, and waits while there is none.
let room = settings.inFlightBound;
const waiting: (() => void)[] = [];
async function reserve(n: number): Promise<void> {
  while (room < n) await new Promise<void>((resolve) => waiting.push(resolve));
  room -= n;
}
function release(n: number): void {
  room += n;
  waiting.splice(0).forEach((wake) => wake());
}

const deletes = new Set<Promise<void>>();

async function remove(messages: Message[], received: number): Promise<void> {
  const res = await client.send(
    new DeleteMessageBatchCommand({
      QueueUrl: settings.queueUrl,
      Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
    }),
  );
  if (res.Failed?.length) throw new Error(`${res.Failed.length} deletes refused: ${res.Failed[0].Code}`);
  const ms = performance.now() - received;
  meter.deleted(messages.length, messages.map(() => ms));
  release(messages.length);
}

async function loop(): Promise<void> {
  while (!halt.signal.aborted) {
    await reserve(10);
    let messages: Message[];
    try {
      const res = await client.send(
        new ReceiveMessageCommand({
          QueueUrl: settings.queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: settings.waitSeconds,
          // masq's request over JSON, field for field (lib/source/sqs.ts): an "All" here would make the
          // ceiling parse attributes masq never asks for.
          MessageSystemAttributeNames: ["SentTimestamp", "ApproximateReceiveCount"],
          MessageAttributeNames: [...RECEIVE_MESSAGE_ATTRIBUTES],
        }),
        { abortSignal: halt.signal },
      );
      messages = res.Messages ?? [];
    } catch (err) {
      release(10);
      if (halt.signal.aborted) return;
      throw err;
    }
    release(10 - messages.length);
    if (messages.length === 0) {
      await Promise.all(deletes);
      if (!halt.signal.aborted && await drained()) halt.abort();
      continue;
    }
    const p: Promise<void> = remove(messages, performance.now()).finally(() => deletes.delete(p));
    deletes.add(p);
  }
}

await ready();
const profiler = settings.profile ? await startProfiler() : undefined;
meter.start();
await Promise.all(Array.from({ length: settings.concurrency }, loop));
await Promise.all(deletes);
const report = meter.report({ concurrency: settings.concurrency });
if (profiler && settings.profile) {
  report.extra = { ...report.extra, profile: await saveProfile(profiler, settings.profile) };
}
console.log(JSON.stringify(report));
client.destroy();
// As `masq run` does (main.ts): whatever handle is still open must not hold the process.
Deno.exit(0);
