/**
 * In-memory Source and Sink and a fake clock for unit tests of the pipeline, its lease and its writer:
 * milliseconds per test, no subprocess, no real waiting. The fakes keep SQS's and PostgreSQL's rules that
 * the pipeline relies on (visibility and receipt handles; one atomic statement, a ledger of message ids)
 * and record every call with the fake time and a global sequence number, so tests can check order.
 */
import type { Clock } from "../../lib/clock.ts";
import type {
  DeadLetter,
  DeadLetterOutcome,
  LoginRecord,
  Message,
  PipelineEvent,
  QueueCounts,
  RejectionRecord,
  Sink,
  SinkRecord,
  Source,
  Transform,
  WriteResult,
} from "../../lib/types.ts";
import { classify as classifySql } from "../../lib/sink/postgres.ts";
import {
  BODY_LEFT_OUT,
  classify as classifySqs,
  DEFAULT_MAX_MESSAGE_BYTES,
  letterBytes,
} from "../../lib/source/sqs.ts";

/** A clock whose time moves only when the test says so. */
export interface FakeClock extends Clock {
  /** Runs `work` to its end, letting fake time jump to each next timer whenever nothing else can run. */
  run<T>(work: Promise<T>, limitMs?: number): Promise<T>;
  /** Lets every pending promise callback run, without moving time. */
  settle(): Promise<void>;
  /** Moves time forward by `ms`, firing the timers due on the way. */
  advance(ms: number): Promise<void>;
}

const realTick = () => new Promise<void>((r) => setTimeout(r, 0));

/** The wall-clock time at fake time 0 (epoch ms): fake clocks tick from here. */
export const FAKE_EPOCH_MS = 1_700_000_000_000;

export function fakeClock(): FakeClock {
  let now = 0;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  function next(until: number): number | undefined {
    let best: number | undefined;
    for (const [id, t] of timers) {
      if (t.at <= until && (best === undefined || t.at < timers.get(best)!.at)) best = id;
    }
    return best;
  }
  async function settle() {
    // A real macrotask turn runs every queued microtask; a few turns let chains that hop through
    // settled promises of other tasks finish too.
    for (let i = 0; i < 3; i++) await realTick();
  }
  function fire(id: number) {
    const t = timers.get(id)!;
    timers.delete(id);
    now = Math.max(now, t.at);
    t.fn();
  }
  return {
    now: () => now,
    wallNow: () => FAKE_EPOCH_MS + now,
    setTimeout(fn, ms) {
      const id = ++seq;
      timers.set(id, { at: now + Math.max(0, ms), fn });
      return id;
    },
    clearTimeout(id) {
      timers.delete(id as number);
    },
    settle,
    async advance(ms) {
      const end = now + ms;
      for (;;) {
        await settle();
        const id = next(end);
        if (id === undefined) break;
        fire(id);
      }
      now = end;
      await settle();
    },
    async run(work, limitMs = 3_600_000) {
      let done = false;
      let failed = false;
      let value: unknown;
      work.then((v) => (done = true, value = v), (e) => (failed = true, done = true, value = e));
      const start = now;
      for (;;) {
        await settle();
        if (done) break;
        const id = next(Infinity);
        if (id === undefined) throw new Error("deadlock: the work is pending and no timer is set");
        if (timers.get(id)!.at - start > limitMs) {
          throw new Error(`the work did not end within ${limitMs} fake ms`);
        }
        fire(id);
      }
      if (failed) throw value;
      return value as Awaited<typeof work>;
    },
  };
}

/**
 * A clock moved only by `advance()`, at once, with no timers: for code that reads the time and sets none
 * (metrics, the progress line between its redraws).
 */
export function manualClock(): Clock & { advance(ms: number): void } {
  let now = 0;
  return {
    now: () => now,
    wallNow: () => FAKE_EPOCH_MS + now,
    setTimeout() {
      throw new Error("manualClock() sets no timers: use fakeClock()");
    },
    clearTimeout() {},
    advance(ms) {
      now += ms;
    },
  };
}

/** The events of a small run: 17 received, 15 inserted, one duplicate, one rejected, retries of both sides. */
export const RUN_EVENTS: readonly PipelineEvent[] = [
  { type: "queue_ok" },
  { type: "received", messages: 10, oldestSentAt: FAKE_EPOCH_MS - 30_000 },
  { type: "in_flight", messages: 10 },
  { type: "received", messages: 7 },
  { type: "in_flight", messages: 17 },
  { type: "retry", what: "database write", kind: "database" },
  { type: "written", rows: 10, inserted: 8, duplicates: 1, rejected: 1, ms: 12 },
  { type: "database_ok" },
  { type: "dead_lettered", messages: 1 },
  { type: "deleted", messages: 10, latenciesMs: Array(10).fill(40) },
  { type: "written", rows: 7, inserted: 7, duplicates: 0, rejected: 0, ms: 3000 },
  { type: "deleted", messages: 7, latenciesMs: Array(7).fill(3100) },
  { type: "in_flight", messages: 0 },
  { type: "retry", what: "receive", kind: "sqs" },
  { type: "retry", what: "receive", kind: "sqs" },
  { type: "queue_counts", counts: { visible: 5, inFlight: 2, delayed: 1 } },
];

/** A global order of recorded calls across fakes. */
let order = 0;
const tick = () => ++order;

interface Stored {
  id: string;
  body: string;
  sentTimestamp: number;
  receiveCount: number;
  visibleAt: number;
  handle: string;
}

export interface MemorySourceOptions {
  clock: Clock;
  visibilityTimeout?: number;
  /** How long a receive on an empty queue waits, ms (a long poll). */
  waitMs?: number;
  /** Decides each dead-letter send: return an error to throw it, or nothing to let the send go on. */
  deadLetterFault?: (letter: DeadLetter, attempt: number) => unknown;
  /** Says the queue is FIFO (Source.fifo): the pipeline then dead-letters in message order. */
  fifo?: boolean;
}

export interface MemorySource extends Source {
  readonly deadLetters: DeadLetter[];
  readonly deletes: { ids: string[]; at: number; seq: number }[];
  readonly extensions: { ids: string[]; at: number }[];
  readonly receives: { at: number; messages: number }[];
  /** Calls of extend or delete under way at one time, at most (they must never overlap). */
  readonly maxOverlap: number;
  /** Messages not deleted. */
  readonly remaining: number;
  /** Sends one more message (a receive waiting takes it when its wait ends). */
  add(body: string): void;
}

/** An SQS queue in memory: visibility, receipt handles, ApproximateReceiveCount, a DLQ. */
export function memorySource(bodies: readonly string[], opts: MemorySourceOptions): MemorySource {
  const { clock } = opts;
  const vt = opts.visibilityTimeout ?? 30;
  const queue: Stored[] = bodies.map((body, i) => ({
    id: `m${String(i).padStart(6, "0")}`,
    body,
    sentTimestamp: 1_700_000_000_000 + i,
    receiveCount: 0,
    visibleAt: 0,
    handle: "",
  }));
  const deadLetters: DeadLetter[] = [];
  const deletes: { ids: string[]; at: number; seq: number }[] = [];
  const extensions: { ids: string[]; at: number }[] = [];
  const receives: { at: number; messages: number }[] = [];
  const dlAttempts = new Map<string, number>();
  let overlap = 0;
  let maxOverlap = 0;
  let handles = 0;
  const exclusive = async <T>(fn: () => T): Promise<T> => {
    overlap++;
    maxOverlap = Math.max(maxOverlap, overlap);
    try {
      await Promise.resolve();
      return fn();
    } finally {
      overlap--;
    }
  };
  const visible = () => queue.filter((m) => m.visibleAt <= clock.now());
  return {
    queueUrl: "http://sqs.local/000000000000/login-queue",
    fifo: opts.fifo === true,
    visibilityTimeout: vt,
    deadLetters,
    deletes,
    extensions,
    receives,
    get maxOverlap() {
      return maxOverlap;
    },
    get remaining() {
      return queue.length;
    },
    add(body) {
      queue.push({
        id: `m${String(queue.length + deletes.length).padStart(6, "0")}-added`,
        body,
        sentTimestamp: 1_700_000_000_000,
        receiveCount: 0,
        visibleAt: 0,
        handle: "",
      });
    },
    classify: classifySqs,
    receive(signal) {
      return new Promise<Message[]>((resolve, reject) => {
        const take = () => {
          const batch = visible().slice(0, 10);
          receives.push({ at: clock.now(), messages: batch.length });
          resolve(batch.map((m) => {
            m.visibleAt = clock.now() + vt * 1000;
            m.receiveCount++;
            m.handle = `h${++handles}`;
            return {
              id: m.id,
              receiptHandle: m.handle,
              body: m.body,
              sentTimestamp: m.sentTimestamp,
              receiveCount: m.receiveCount,
            };
          }));
        };
        if (visible().length > 0) return void queueMicrotask(take);
        const timer = clock.setTimeout(take, opts.waitMs ?? 1000);
        signal?.addEventListener("abort", () => {
          clock.clearTimeout(timer);
          reject(Object.assign(new Error("aborted"), { name: "AbortError" }));
        }, { once: true });
      });
    },
    extendVisibility(messages) {
      return exclusive(() => {
        extensions.push({ ids: messages.map((m) => m.id), at: clock.now() });
        for (const m of messages) {
          const s = queue.find((q) => q.handle === m.receiptHandle);
          if (s) s.visibleAt = clock.now() + vt * 1000;
        }
      });
    },
    delete(messages) {
      return exclusive(() => {
        deletes.push({ ids: messages.map((m) => m.id), at: clock.now(), seq: tick() });
        for (const m of messages) {
          const i = queue.findIndex((q) => q.handle === m.receiptHandle);
          if (i >= 0) queue.splice(i, 1);
        }
      });
    },
    async deadLetter(letter): Promise<DeadLetterOutcome> {
      await Promise.resolve();
      const attempt = (dlAttempts.get(letter.messageId) ?? 0) + 1;
      dlAttempts.set(letter.messageId, attempt);
      const fault = opts.deadLetterFault?.(letter, attempt);
      if (fault !== undefined) throw fault;
      // As the SQS source does: a letter too large goes without its redacted body, if it then fits.
      const sent = letterBytes(letter) <= DEFAULT_MAX_MESSAGE_BYTES
        ? letter
        : { ...letter, body: BODY_LEFT_OUT };
      if (letterBytes(sent) > DEFAULT_MAX_MESSAGE_BYTES) {
        return { status: "refused", why: "too large for the dead-letter queue" };
      }
      deadLetters.push(sent);
      return { status: "sent" };
    },
    counts(): Promise<QueueCounts> {
      const now = clock.now();
      return Promise.resolve({
        visible: queue.filter((m) => m.visibleAt <= now).length,
        inFlight: queue.filter((m) => m.visibleAt > now).length,
        delayed: 0,
      });
    },
    close() {},
  };
}

/** An SQS error as the SDK throws it. */
export function sqsError(name: string, status: number): Error {
  return Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
}

/** A PostgreSQL error as the driver throws it. */
export function pgError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

export interface MemorySinkOptions {
  clock: Clock;
  /** How long each statement takes, fake ms. */
  statementMs?: number;
  /** An error for a record the "database" refuses (thrown for its whole statement), or nothing. */
  refuse?: (r: SinkRecord) => Error | undefined;
  /** Decides each statement (its number and rows): return an error to throw it (before anything commits). */
  fault?: (statement: number, rows: number) => unknown;
}

export interface MemorySink extends Sink {
  readonly logins: Map<string, SinkRecord>;
  readonly rejections: Map<string, SinkRecord & { kind: "rejection" }>;
  /** Each committed statement: its message ids, fake time and global order. */
  readonly commits: { ids: string[]; rows: number; at: number; seq: number }[];
  /** Statements under way at one time, at most. */
  readonly maxConcurrent: number;
}

/** A database in memory: one atomic statement per writeBatches, a ledger of message ids. */
export function memorySink(opts: MemorySinkOptions): MemorySink {
  const { clock } = opts;
  const ledger = new Set<string>();
  const logins = new Map<string, SinkRecord>();
  const rejections = new Map<string, SinkRecord & { kind: "rejection" }>();
  const commits: { ids: string[]; rows: number; at: number; seq: number }[] = [];
  let statements = 0;
  let concurrent = 0;
  let maxConcurrent = 0;
  const writeBatches = async (batches: readonly (readonly SinkRecord[])[]): Promise<WriteResult[]> => {
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    try {
      const n = ++statements;
      if (opts.statementMs) await new Promise<void>((r) => clock.setTimeout(r, opts.statementMs!));
      const fault = opts.fault?.(n, batches.reduce((k, b) => k + b.length, 0));
      if (fault !== undefined) throw fault;
      for (const b of batches) {
        for (const r of b) {
          const err = opts.refuse?.(r);
          if (err) throw err;
        }
      }
      const ids: string[] = [];
      const results = batches.map((b) => {
        const res = { inserted: 0, rejected: 0, duplicates: 0 };
        for (const r of b) {
          if (ledger.has(r.messageId)) {
            res.duplicates++;
            continue;
          }
          ledger.add(r.messageId);
          ids.push(r.messageId);
          if (r.kind === "login") {
            logins.set(r.messageId, r);
            res.inserted++;
          } else {
            rejections.set(r.messageId, r);
            res.rejected++;
          }
        }
        return res;
      });
      commits.push({ ids, rows: batches.reduce((k, b) => k + b.length, 0), at: clock.now(), seq: tick() });
      return results;
    } finally {
      concurrent--;
    }
  };
  return {
    logins,
    rejections,
    commits,
    get maxConcurrent() {
      return maxConcurrent;
    },
    classify: classifySql,
    written: (ids) => Promise.resolve(new Set(ids.filter((id) => ledger.has(id)))),
    writeBatches,
    close: () => Promise.resolve(),
  };
}

/** One batch written through `sink.writeBatches()`, and its result. */
export async function writeOne(sink: Sink, records: readonly SinkRecord[]): Promise<WriteResult> {
  return (await sink.writeBatches([records]))[0];
}

/** A transform for pipeline tests: JSON with a string user_id is a login; anything else a rejection. */
export const plainTransform: Transform = {
  record(m) {
    let json: unknown;
    try {
      json = JSON.parse(m.body);
    } catch {
      return { kind: "rejection", messageId: m.id, reason: "body is not valid JSON", bodyRedacted: null };
    }
    const user = (json as { user_id?: unknown })?.user_id;
    if (typeof user !== "string" || user === "") {
      return { kind: "rejection", messageId: m.id, reason: "user_id is missing", bodyRedacted: m.body };
    }
    return loginRecord(m.id, user);
  },
  rejection(m, reason) {
    return { kind: "rejection", messageId: m.id, reason, bodyRedacted: m.body };
  },
};

/** A valid login record with only its message id and user id set (the rest null, a fixed date). */
export function loginRecord(messageId: string, userId = `user-${messageId}`): LoginRecord {
  return {
    kind: "login",
    messageId,
    userId,
    deviceType: null,
    maskedIp: null,
    maskedDeviceId: null,
    locale: null,
    appVersion: null,
    createDate: "2024-01-01",
  };
}

/** A login row with every column set (masked values of the right shape), `over` replacing any of them. */
export function fullLogin(messageId: string, over: Partial<LoginRecord> = {}): LoginRecord {
  return {
    kind: "login",
    messageId,
    userId: `user-${messageId}`,
    deviceType: "android",
    maskedIp: "a".repeat(64),
    maskedDeviceId: "b".repeat(64),
    locale: "RU",
    appVersion: 2003000,
    createDate: "2024-05-17",
    ...over,
  };
}

/** A rejection row with a reason and a redacted body, `over` replacing either. */
export function fullRejection(messageId: string, over: Partial<RejectionRecord> = {}): RejectionRecord {
  return { kind: "rejection", messageId, reason: "user_id is missing", bodyRedacted: '{"foo":"x"}', ...over };
}

/** A dead letter's id of SQS's shape, the one MAC verifyReplay() accepts for it, and a String attribute. */
export const LETTER_ID = "0b9c6f1e-1d2a-4c7e-9a51-2f8e5b7c3d10";
export const GOOD_MAC = "a".repeat(64);
/** Accepts exactly GOOD_MAC for LETTER_ID, as masq.ts's verifier does for the real MAC. */
export const verifyReplay = (id: string, mac: string): boolean => id === LETTER_ID && mac === GOOD_MAC;
export const stringAttribute = (value: string) => ({ DataType: "String", StringValue: value });
