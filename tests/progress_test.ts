import { createProgress, formatDuration } from "../lib/progress.ts";
import type { Fields, Logger } from "../lib/log.ts";
import { assert, assertEquals } from "./support/assert.ts";
import { manualClock } from "./support/fakes.ts";

function recorder() {
  const lines: { msg: string; fields?: Fields }[] = [];
  const log: Logger = {
    debug() {},
    info: (msg, fields) => void lines.push({ msg, ...(fields ? { fields } : {}) }),
    warn() {},
    error() {},
  };
  return { log, lines };
}

Deno.test("formatDuration() writes m:ss under an hour and h:mm:ss above", () => {
  assertEquals(formatDuration(0), "0:00");
  assertEquals(formatDuration(65.4), "1:05");
  assertEquals(formatDuration(3725), "1:02:05");
});

Deno.test("createProgress() on a terminal redraws one line with done, queue depth, rate and ETA", () => {
  const clock = manualClock();
  let out = "";
  const { log, lines } = recorder();
  const p = createProgress({ write: (t) => void (out += t), terminal: true, log, clock });
  p.onEvent({ type: "queue_counts", counts: { visible: 900, inFlight: 100, delayed: 0 } });
  for (let i = 0; i < 10; i++) {
    clock.advance(1000);
    p.onEvent({ type: "received", messages: 50 });
    p.onEvent({ type: "written", rows: 50, inserted: 48, duplicates: 1, rejected: 1, ms: 5 });
    p.onEvent({ type: "deleted", messages: 50, latenciesMs: [] });
  }
  const s = p.state();
  assertEquals([s.done, s.inserted, s.duplicates, s.rejected, s.queueDepth], [500, 480, 10, 10, 500]);
  assertEquals(s.rate, 50);
  assertEquals(s.etaSeconds, 10);
  assertEquals(
    p.line(),
    "masq: 500 done (480 inserted, 10 rejected, 10 duplicates) | 0 in flight | queue ~500 | 50/s | ETA 0:10",
  );
  // Every draw starts by returning to column 0 and clearing the line; nothing ends a line until stop().
  assert(out.startsWith("\r\x1b[2K"), "draws in place");
  assert(!out.includes("\n"), "no newline while running");
  p.stop();
  assert(out.endsWith("ETA 0:10\n"), "the last line stays, ended by a newline");
  assertEquals(lines, [], "no log lines on a terminal");
});

Deno.test("createProgress() redraws at most every redrawEveryMs however many events arrive", () => {
  const clock = manualClock();
  let draws = 0;
  const p = createProgress({
    write: (t) => void (draws += t.startsWith("\r") ? 1 : 0),
    terminal: true,
    log: recorder().log,
    clock,
    redrawEveryMs: 250,
  });
  for (let i = 0; i < 1000; i++) {
    clock.advance(1); // 1000 events in one second
    p.onEvent({ type: "deleted", messages: 1, latenciesMs: [] });
  }
  assert(draws >= 4 && draws <= 5, `${draws} draws in one second`);
});

Deno.test("createProgress() keeps log lines off the progress line: clear, log, redraw", () => {
  let out = "";
  const p = createProgress({ write: (t) => void (out += t), terminal: true, log: recorder().log });
  const write = p.wrapLogWrite((line) => void (out += line + "\n"));
  p.onEvent({ type: "deleted", messages: 3, latenciesMs: [] });
  out = "";
  write("12:00:00.000 WARN  visibility heartbeat failed");
  const CLEAR = "\r\x1b[2K";
  assert(
    out.startsWith(`${CLEAR}12:00:00.000 WARN  visibility heartbeat failed\nmasq: 3 done`),
    JSON.stringify(out),
  );
});

Deno.test("createProgress() off a terminal logs a progress line every logEveryMs and writes nothing raw", async () => {
  let out = "";
  const { log, lines } = recorder();
  const p = createProgress({ write: (t) => void (out += t), terminal: false, log, logEveryMs: 20 });
  assertEquals(p.wrapLogWrite(console.log), console.log, "log lines pass through untouched");
  p.start();
  try {
    p.onEvent({ type: "received", messages: 10 });
    p.onEvent({ type: "written", rows: 10, inserted: 10, duplicates: 0, rejected: 0, ms: 1 });
    p.onEvent({ type: "deleted", messages: 10, latenciesMs: [] });
    for (let i = 0; i < 200 && lines.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  } finally {
    p.stop();
  }
  assert(lines.length >= 2, "periodic lines");
  assertEquals(lines[0].msg, "progress");
  assertEquals(
    { ...lines[0].fields, rate: 0 },
    { received: 10, done: 10, inserted: 10, duplicates: 0, rejected: 0, in_flight: 0, rate: 0 },
  );
  assertEquals(out, "");
});
