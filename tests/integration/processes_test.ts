/**
 * The tests' subprocess rules (tests/support/processes.ts), tested on small `deno eval` children: a child
 * that outlives its time limit is killed and reaped and the error names it; a wait for output ends when
 * the line comes, and fails when the child ends without it.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "../support/assert.ts";
import { collect, hasExited, killAndReap, spawnWatched, waitForOutput } from "../support/processes.ts";

const deno = Deno.execPath();

Deno.test("collect() kills a child that outlives its time limit and names it in the error", async () => {
  const child = spawnWatched(deno, ["eval", "console.error('started'); setTimeout(() => {}, 60_000)"], {
    timeoutMs: 1_000,
    label: "a child that hangs",
  });
  try {
    const started = Date.now();
    const err = await assertRejects(() => collect(child), Error);
    assertMatch(err.message, /^a child that hangs: still running after 1 s, killed \(SIGKILL\)/);
    assertMatch(err.message, /started/);
    assert(hasExited(child), "the child was reaped");
    assertEquals((await child.status).signal, "SIGKILL");
    assert(Date.now() - started < 30_000, "killed long before it would have ended");
  } finally {
    await killAndReap(child);
  }
});

Deno.test("waitForOutput() returns the match once the line is printed, and collect() the whole output", async () => {
  const child = spawnWatched(deno, ["eval", "console.log('ready 4242'); console.error('bye')"]);
  try {
    const m = await waitForOutput(child, /ready (\d+)/, { stream: "stdout" });
    assertEquals(m[1], "4242");
    const res = await collect(child);
    assertEquals(res.code, 0);
    assertEquals(res.stdout, "ready 4242\n");
    assertEquals(res.stderr, "bye\n");
  } finally {
    await killAndReap(child);
  }
});

Deno.test("waitForOutput() fails, naming the child, when it ends without the line", async () => {
  const child = spawnWatched(deno, ["eval", "console.error('something else')"], { label: "quiet child" });
  try {
    const err = await assertRejects(() => waitForOutput(child, /never printed/), Error);
    assertMatch(err.message, /^quiet child: ended without \/never printed\/ on stderr/);
    assertMatch(err.message, /something else/);
  } finally {
    await killAndReap(child);
  }
});

Deno.test("waitForOutput() fails after its own time limit and leaves the child to killAndReap()", async () => {
  const child = spawnWatched(deno, ["eval", "setTimeout(() => {}, 60_000)"], { label: "slow child" });
  try {
    const err = await assertRejects(() => waitForOutput(child, /ready/, { timeoutMs: 300 }), Error);
    assertMatch(err.message, /^slow child: no \/ready\/ on stderr within 0.3 s/);
    assert(!hasExited(child), "still running until the clean-up");
  } finally {
    await killAndReap(child);
  }
  assert(hasExited(child));
});
