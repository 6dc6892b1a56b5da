/** lib/signals.ts; the real processes (deno task start signalled as a group, its runner killed): tests/integration/signals_test.ts. */
import { assertEquals } from "./support/assert.ts";
import { createStopper, REPEAT_WINDOW_MS } from "../lib/signals.ts";
import { createLogger } from "../lib/log.ts";

function setup() {
  let now = 0;
  const exits: number[] = [];
  const lines: string[] = [];
  const log = createLogger({ format: "text", level: "debug", write: (l) => lines.push(l) });
  const stopper = createStopper({ log, now: () => now, exit: (code) => exits.push(code) });
  return { stopper, exits, lines, advance: (ms: number) => (now += ms) };
}

Deno.test("createStopper() takes copies of a signal within the window for the same stop, never an exit", () => {
  const t = setup();
  t.stopper.signal("SIGTERM");
  assertEquals(t.stopper.stop.aborted, true);
  t.advance(1);
  t.stopper.signal("SIGTERM");
  t.stopper.signal("SIGINT");
  t.advance(REPEAT_WINDOW_MS - 2);
  t.stopper.signal("SIGTERM");
  assertEquals(t.exits, []);
  assertEquals(t.lines.filter((l) => l.includes("stopping")).length, 1);
});

Deno.test("createStopper() exits 1 at once for a signal after the window, and for SIGQUIT", () => {
  const t = setup();
  t.stopper.signal("SIGINT");
  t.advance(REPEAT_WINDOW_MS);
  t.stopper.signal("SIGINT");
  assertEquals(t.exits, [1]);
  const q = setup();
  q.stopper.quit();
  assertEquals(q.exits, [1]);
  assertEquals(q.lines.some((l) => l.includes("SIGQUIT: exiting now")), true);
});

Deno.test("createStopper() stops gracefully once when the parent dies, and a signal right after is the same stop", () => {
  const t = setup();
  t.stopper.parentGone(4242);
  t.stopper.parentGone(4242);
  assertEquals(t.stopper.stop.aborted, true);
  t.stopper.signal("SIGTERM");
  assertEquals(t.exits, []);
  assertEquals(t.lines.filter((l) => l.includes("parent process exited")).length, 1);
});
