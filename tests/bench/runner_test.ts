import { assertAlmostEquals, assertEquals } from "../support/assert.ts";
import { rateBound, type RunFigures } from "../../bench/runner.ts";

const run = (cpu: number, emulator: number | null, rest: number | null): RunFigures => ({
  messages: 1,
  seconds: 1,
  rate: 1,
  cpu_us_per_msg: cpu,
  alloc_kib_per_msg: null,
  p50_ms: null,
  p99_ms: null,
  peak_rss_mib: 1,
  emulator_cpu_us_per_msg: emulator,
  rest_cpu_us_per_msg: rest,
  machine_cores: null,
  end: "last delete",
});

Deno.test("rateBound() is the ceiling's machine CPU per message over the same plus the rest's extra", () => {
  // The doc's example: 100 + 50 + 0 against a rest of 30 while masq ran.
  assertAlmostEquals(rateBound(run(100, 50, 0), run(140, 55, 30))!, 150 / 180, 1e-9);
  // masq's own CPU does not enter: the bound is what the machine allows at the ceiling's.
  assertEquals(rateBound(run(100, 50, 0), run(1000, 55, 30)), rateBound(run(100, 50, 0), run(100, 50, 30)));
  // A rest no busier than during the ceiling's run bounds nothing.
  assertEquals(rateBound(run(100, 50, 5), run(140, 55, 2)), 1);
  assertEquals(rateBound(run(100, null, 0), run(140, 55, 30)), null);
  assertEquals(rateBound(run(100, 50, 0), run(140, 55, null)), null);
});
