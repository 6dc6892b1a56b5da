import { assert, assertEquals } from "../support/assert.ts";
import { createMeter } from "../../bench/measure.ts";

Deno.test("createMeter() reports the heap allocated between start and report, garbage included", () => {
  const meter = createMeter();
  meter.start();
  let kept = 0;
  // 20 MiB or more in arrays of 128 numbers (over 1 KiB each, on the heap), each garbage at once: only a
  // running total of allocation can see them.
  for (let i = 0; i < 20 * 1024; i++) kept += new Array(128).fill(i + 0.5).length > 0 ? 1 : 0;
  meter.deleted(10, Array(10).fill(1));
  const report = meter.report();
  assertEquals(kept, 20 * 1024);
  assertEquals(report.messages, 10);
  assert(report.heapAllocatedBytes !== undefined, "V8's allocation total is not reported");
  assert(report.heapAllocatedBytes >= 20 * 1024 * 1024, `${report.heapAllocatedBytes} bytes`);
});
