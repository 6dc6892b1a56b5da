import { assert, assertAlmostEquals, assertEquals } from "../support/assert.ts";
import { cpuTotals, type MachineSample, startMachineSampler, usageBetween } from "../../bench/machine.ts";

Deno.test("cpuTotals() adds every CPU's busy time (all but idle) and its total", () => {
  assertEquals(
    cpuTotals([
      { user: 100, nice: 5, sys: 40, idle: 850, irq: 5 },
      { user: 10, nice: 0, sys: 10, idle: 980, irq: 0 },
    ]),
    { busy: 170, total: 2000 },
  );
  assertEquals(cpuTotals([]), { busy: 0, total: 0 });
});

const sample = (at: number, busy: number, total: number, selfUs: number): MachineSample => ({
  at,
  busy,
  total,
  selfUs,
});

Deno.test("usageBetween() reads each end of the window between the samples around it", () => {
  // Two CPUs, one busy (busy grows 1 ms a ms of 2 in all); the process uses 0.3 of a core; then a burst.
  const samples = [
    sample(0, 0, 0, 0),
    sample(100, 100, 200, 30_000),
    sample(200, 200, 400, 60_000),
    sample(300, 300, 600, 90_000),
    sample(400, 500, 800, 200_000), // the burst, after the window: it does not count
  ];
  const u = usageBetween(samples, 50, 300, 2)!;
  assertAlmostEquals(u.machineCores!, 1, 1e-9);
  assertAlmostEquals(u.selfCores, 0.3, 1e-9);
  // The same window shifted into the burst sees it.
  assert(usageBetween(samples, 150, 400, 2)!.machineCores! > 1.1);
});

Deno.test("usageBetween() is null for an empty window or one outside the samples", () => {
  const samples = [sample(0, 0, 0, 0), sample(100, 10, 20, 0), sample(200, 20, 40, 0)];
  assertEquals(usageBetween(samples, 150, 150, 2), null);
  assertEquals(usageBetween(samples, 150, 250, 2), null);
  assertEquals(usageBetween(samples, -10, 50, 2), null);
  assertEquals(usageBetween(samples.slice(0, 1), 0, 0, 2), null);
  assertEquals(usageBetween(samples, 120, 180, 2)?.machineCores, 1);
});

Deno.test("startMachineSampler() sees this process's own work, and the machine's when it can read it", async () => {
  let selfUs = 0;
  const times = { user: 0, nice: 0, sys: 0, idle: 0, irq: 0 };
  // A fake machine of one CPU, busy half the time, and a process that uses a tenth of a core.
  const started = Date.now();
  const sampler = startMachineSampler(() => {
    const ms = Date.now() - started;
    selfUs = ms * 100;
    return selfUs;
  }, () => {
    const ms = Date.now() - started;
    times.user = ms / 2;
    times.idle = ms / 2;
    return [times];
  });
  const from = Date.now();
  await new Promise((r) => setTimeout(r, 300));
  const u = sampler.usage(from, Date.now());
  sampler.stop();
  assert(u !== null, "a 300 ms window holds samples");
  assertAlmostEquals(u.machineCores!, 0.5, 0.05);
  assertAlmostEquals(u.selfCores, 0.1, 0.02);
});

Deno.test("startMachineSampler() reports no machine cores when the CPU times cannot be read", async () => {
  const sampler = startMachineSampler(() => 0, () => {
    throw new Deno.errors.NotCapable('Requires sys access to "cpus"');
  });
  const from = Date.now();
  await new Promise((r) => setTimeout(r, 100));
  const u = sampler.usage(from, Date.now());
  sampler.stop();
  assertEquals(u?.machineCores, null);
});
