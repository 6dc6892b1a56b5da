/**
 * docs/sqs.md "Stopping and signals", with real processes: `deno task start` in a process group of its own
 * (setsid), signalled as a terminal's Ctrl-C, `timeout` or a supervisor does (the whole group, sometimes
 * twice), idle and busy, many times: every stop is graceful (exit 0, the summary, nothing in flight left,
 * nothing lost). And a `kill -9` of the task runner: masq notices its parent is gone and stops by itself.
 * The decisions alone are tested in tests/signals_test.ts.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { ledgerCount, seedSynthetic, waitFor } from "../support/delivery.ts";
import { collect, killAndReap, ROOT, spawnWatched, TEST_KEY, waitForOutput } from "../support/processes.ts";
import { startDatabase, type TestDatabase } from "../support/databases.ts";
import { queueDepth, sqsClient } from "../support/sqs.ts";
import { startEmbeddedSqs } from "../../lib/embedded.ts";

function setsidPath(): string {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/setsid`).isFile) return `${dir}/setsid`;
    } catch { /* not here */ }
  }
  throw new Error(
    "setsid (util-linux) is not on PATH: it puts `deno task start` in a process group of its own",
  );
}

/** `deno task start <args>` as a user starts it, as the leader of a new process group (its pid is the group's). */
function startTask(args: string[], queueUrl: string, db: TestDatabase): Deno.ChildProcess {
  return spawnWatched(setsidPath(), [Deno.execPath(), "task", "start", ...args], {
    env: {
      SQS_QUEUE_URL: queueUrl,
      DATABASE_URL: db.url,
      PII_HMAC_KEY: TEST_KEY,
      NO_COLOR: "1",
      HOME: Deno.env.get("HOME") ?? "/root",
      // deno task finds deno on PATH.
      PATH: `${Deno.execPath().replace(/\/[^/]+$/, "")}:${Deno.env.get("PATH") ?? ""}`,
      ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
    },
    clearEnv: true,
    cwd: ROOT,
    label: `deno task start ${args.join(" ")}`,
    timeoutMs: 120_000,
  });
}

/** `ps` with these arguments (Deno reads other processes' /proc entries only with --allow-all). */
async function ps(args: string[]): Promise<string> {
  return (await collect(spawnWatched("ps", args, { timeoutMs: 10_000 }))).stdout.trim();
}

/** The pids of a process's children. */
async function childrenOf(pid: number): Promise<number[]> {
  return (await ps(["-o", "pid=", "--ppid", String(pid)])).split(/\s+/).filter(Boolean).map(Number);
}

/** Whether a process is still running (not gone, not a zombie waiting for a reaper). */
async function running(pid: number): Promise<boolean> {
  const state = await ps(["-o", "stat=", "-p", String(pid)]);
  return state !== "" && !state.startsWith("Z");
}

function killGroup(pgid: number): void {
  try {
    Deno.kill(-pgid, "SIGKILL");
  } catch { /* the group is gone */ }
}

const ROUNDS = 10;
const BUSY_MESSAGES = 1500;

Deno.test(`deno task start signalled as a process group ${ROUNDS} times, idle and busy, stops gracefully every time and loses nothing`, async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  const client = sqsClient(sqs);
  let child: Deno.ChildProcess | undefined;
  try {
    const queueUrl = sqs.createQueue("signals-queue", { VisibilityTimeout: "30" });
    const seeded = { total: 0, good: 0 };
    const stops: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const busy = round % 2 === 1;
      const signal: Deno.Signal = round % 4 < 2 ? "SIGTERM" : "SIGINT";
      // Again to the group in some rounds, a few ms later (a supervisor, `timeout`, a second wrapper):
      // copies that arrive together may reach masq as one, so these are spaced.
      const times = round % 3 === 2 ? 3 : round % 3 === 1 ? 2 : 1;
      if (busy) {
        // Fresh messages for this round (unique user ids across rounds).
        const more = await seedSynthetic(sqs, client, "signals-queue", BUSY_MESSAGES, 50);
        seeded.good += more.goodUserIds.size;
        seeded.total += more.total;
      }
      const task = child = startTask(["--follow", "--wait-seconds", "2", "--concurrency", "4"], queueUrl, db);
      await waitForOutput(task, /connected to SQS/);
      if (busy) {
        const before = await ledgerCount(db);
        assert(await waitFor(async () => (await ledgerCount(db)) > before + 100, 60_000, 5), "no progress");
      } else {
        await new Promise((r) => setTimeout(r, 300));
      }
      const at = Date.now();
      for (let i = 0; i < times; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 5 + 20 * i));
        try {
          Deno.kill(-task.pid, signal);
        } catch (err) {
          // A repeat after the group has already stopped (a busy stop can take milliseconds).
          if (i === 0 || !(err instanceof Deno.errors.NotFound)) throw err;
        }
      }
      const res = await collect(task);
      const took = Date.now() - at;
      stops.push(`${signal}x${times} ${busy ? "busy" : "idle"}: exit ${res.code} in ${took} ms`);
      assertEquals(
        res.code,
        0,
        `round ${round} (${signal} x${times}, ${busy ? "busy" : "idle"}):\n${res.stderr}`,
      );
      assert(
        !res.stderr.includes("exiting now"),
        `round ${round} took a copy of the signal for a force:\n${res.stderr}`,
      );
      assertEquals(res.stderr.match(/: stopping; finishing in-flight batches/g)?.length, 1, res.stderr);
      assert(res.summary !== undefined, `no summary on stdout: ${res.stdout}`);
      assertEquals(
        (await queueDepth(client, queueUrl)).inFlight,
        0,
        `round ${round} left messages in flight`,
      );
    }
    console.log(stops.join("\n"));
    // Whatever the stops left in the queue, one drain finishes: every message written exactly once.
    const last = child = startTask([], queueUrl, db);
    const res = await collect(last);
    assertEquals(res.code, 0, res.stderr);
    const rows = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_logins");
    const ledger = await ledgerCount(db);
    assertEquals(ledger, seeded.total, "every message is in the ledger once");
    assertEquals(rows[0].n, seeded.good, "every good message is one row");
    assertEquals(await queueDepth(client, queueUrl), { visible: 0, inFlight: 0 });
  } finally {
    // The whole group: a masq that outlived its runner would hold the test's pipes open.
    if (child) killGroup(child.pid);
    await killAndReap(child);
    client.destroy();
    await db.stop();
    await sqs.stop();
  }
});

Deno.test("masq stops gracefully when its task runner is killed with SIGKILL", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  let child: Deno.ChildProcess | undefined;
  let masqPid: number | undefined;
  try {
    const queueUrl = sqs.createQueue("orphan-queue", { VisibilityTimeout: "30" });
    const task = child = startTask(["--follow", "--wait-seconds", "1"], queueUrl, db);
    await waitForOutput(task, /connected to SQS/);
    const kids = await childrenOf(task.pid);
    assertEquals(kids.length, 1, "deno task start runs deno directly: one child, no nested task runner");
    masqPid = kids[0];
    const killed = Date.now();
    Deno.kill(task.pid, "SIGKILL");
    // Watched by its pid (an orphan would hold the test's pipes open: output never ends).
    assert(
      await waitFor(async () => !(await running(masqPid!)), 15_000, 50),
      "masq is still running as an orphan",
    );
    console.log(`masq stopped ${Date.now() - killed} ms after its task runner was killed`);
    // masq wrote to the test's pipes to the end: its last words.
    const res = await collect(task);
    assert(res.stderr.includes("the parent process exited: stopping"), res.stderr);
    assert(res.stdout.includes('"received":0'), `masq did not end with its summary: ${res.stdout}`);
  } finally {
    if (masqPid !== undefined && await running(masqPid)) Deno.kill(masqPid, "SIGKILL");
    if (child) killGroup(child.pid);
    await killAndReap(child);
    await db.stop();
    await sqs.stop();
  }
});

Deno.test("SIGQUIT to the group of deno task start makes masq exit at once, saying so", async () => {
  const sqs = await startEmbeddedSqs();
  const db = await startDatabase();
  let child: Deno.ChildProcess | undefined;
  let masqPid: number | undefined;
  try {
    const queueUrl = sqs.createQueue("quit-queue", { VisibilityTimeout: "30" });
    const task = child = startTask(["--follow", "--wait-seconds", "20"], queueUrl, db);
    await waitForOutput(task, /connected to SQS/);
    [masqPid] = await childrenOf(task.pid);
    const at = Date.now();
    Deno.kill(-task.pid, "SIGQUIT");
    // Not the graceful stop, which would wait for the 20 s long polls.
    assert(await waitFor(async () => !(await running(masqPid!)), 5_000, 20), "masq did not exit at once");
    console.log(`SIGQUIT: masq exited ${Date.now() - at} ms after it`);
    const res = await collect(task);
    assert(res.stderr.includes("SIGQUIT: exiting now"), res.stderr);
  } finally {
    if (masqPid !== undefined && await running(masqPid)) Deno.kill(masqPid, "SIGKILL");
    if (child) killGroup(child.pid);
    await killAndReap(child);
    await db.stop();
    await sqs.stop();
  }
});
