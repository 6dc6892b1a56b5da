/**
 * The benchmark end to end at a small size: the emulator and every consumer in processes of their own, the
 * row counts checked exact inside runBench (it throws otherwise), figures for both consumers; and its
 * entry point, bench/main.ts, as `deno task bench` runs it.
 */
import { assert, assertEquals, assertMatch } from "../support/assert.ts";
import { type CompareResult, runBench } from "../../bench/runner.ts";
import { silentLogger } from "../../lib/log.ts";
import { collect, ROOT, spawnWatched, taskPermissions } from "../support/processes.ts";

Deno.test("bench/main.ts exits 2 with one line when --messages is not a whole number from 10 to 1000000", async () => {
  for (const n of ["5", "abc", "2000000", "1e3"]) {
    const res = await collect(
      spawnWatched(Deno.execPath(), [
        "run",
        ...taskPermissions("bench"),
        `${ROOT}bench/main.ts`,
        "--messages",
        n,
      ], { env: { NO_COLOR: "1" }, cwd: ROOT }),
    );
    assertEquals(res.code, 2, res.stderr);
    assertEquals(res.stdout, "");
    assertMatch(
      res.stderr,
      new RegExp(`^masq: --messages: "${n}" is not a whole number from 10 to 1000000\n$`),
    );
  }
});

const env = (name: string) =>
  name === "BENCH_DATABASE_URL" ? Deno.env.get("TEST_DATABASE_URL") : Deno.env.get(name);

Deno.test({
  name: "runBench() measures the ceiling and masq on two competing processes each, with exact row counts",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const lines: string[] = [];
    const result = await runBench({
      log: silentLogger,
      print: (l) => lines.push(l),
      env,
      messages: 400,
      rounds: 1,
      processes: 2,
      concurrencies: [2, 4],
      badRate: 0.05,
    }) as unknown as CompareResult;
    assertEquals(result.mode, "compare");
    assertEquals(result.messages, 400);
    assertEquals(result.processes, 2);
    assert(result.bad > 5 && result.bad < 40, `${result.bad} bad messages seeded`);
    assertEquals(Object.keys(result.ceiling.calibration), ["2", "4"]);
    for (const f of [result.ceiling, result.masq]) {
      assert(f.rate > 0 && Number.isFinite(f.rate), `rate ${f.rate}`);
      assert(f.cpu_us_per_msg > 0, `cpu ${f.cpu_us_per_msg}`);
      assert(f.peak_rss_mib > 20, `rss ${f.peak_rss_mib}`);
      // Every request through the SDK allocates kilobytes: a figure near zero would be a broken meter.
      assert(f.alloc_kib_per_msg !== null && f.alloc_kib_per_msg > 1, `heap ${f.alloc_kib_per_msg} KiB/msg`);
    }
    assert(result.ceiling.p50_ms !== null && result.ceiling.p99_ms! >= result.ceiling.p50_ms);
    assert(result.ratio.rate > 0 && result.ratio.cpu > 0 && result.ratio.rss > 0);
    assert(lines.some((l) => /^median\s+masq/.test(l)), lines.join("\n"));
    // The machine's side: the emulator answers every request, and the machine was busy at least with
    // the consumer and the emulator.
    for (const f of [result.ceiling, result.masq]) {
      assert(f.emulator_cpu_us_per_msg !== null && f.emulator_cpu_us_per_msg > 0, JSON.stringify(f));
      assert(
        f.machine_cores !== null && f.machine_cores > 0 && f.machine_cores <= navigator.hardwareConcurrency,
      );
      assert(f.rest_cpu_us_per_msg !== null, JSON.stringify(f));
    }
    assert(result.machine !== undefined, "the machine's CPU times are readable here");
    assert(result.machine.rate_bound > 0 && result.machine.rate_bound <= 1, JSON.stringify(result.machine));
    assert(lines.some((l) => l.startsWith("the whole machine per message")), lines.join("\n"));
  },
});

Deno.test({
  name: "runBench() with ablate measures masq without each part in turn, the stand-ins' rows checked exact",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const lines: string[] = [];
    // runBench throws unless masq without the sink wrote nothing and without the transform one fixed row
    // per message: a stand-in that were not used would fail it.
    const result = await runBench({
      log: silentLogger,
      print: (l) => lines.push(l),
      env,
      messages: 300,
      rounds: 1,
      concurrencies: [2],
      ablate: ["transform", "sink"],
    }) as unknown as CompareResult;
    assertEquals(result.ablations?.map((a) => a.without), [["transform"], ["transform", "sink"]]);
    assertEquals(result.per_round[0].ablated?.length, 2);
    for (const a of result.ablations!) {
      assertEquals(a.masq.messages, 300);
      assert(a.ratio.cpu > 0 && a.masq.rate > 0, JSON.stringify(a));
    }
    assert(lines.some((l) => /^median\s+masq -transform -sink\s/.test(l)), lines.join("\n"));
    assert(lines.some((l) => l.startsWith("masq -transform / ceiling (diagnosis only")), lines.join("\n"));
  },
});

Deno.test({
  name:
    "runBench() in profile mode writes a CPU and a heap profile of each consumer and names where the time and the heap went",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "masq_bench_profile_" });
    try {
      const result = await runBench({
        log: silentLogger,
        print: () => {},
        env,
        messages: 300,
        mode: "profile",
        profileDir: dir,
      }) as Record<
        string,
        { profile: string; areas: { name: string }[]; heap_bytes: number; heap_areas: { name: string }[] }
      >;
      for (const consumer of ["ceiling", "masq"]) {
        const profile = JSON.parse(await Deno.readTextFile(`${dir}/${consumer}.cpuprofile`));
        assert(profile.samples.length > 0);
        const heap = JSON.parse(await Deno.readTextFile(`${dir}/${consumer}.heapprofile`));
        assert(heap.head.children.length > 0);
        // 300 messages through the SDK allocate megabytes (tens of KiB each): a handful of samples at least.
        assert(
          result[consumer].heap_bytes > 1024 * 1024,
          `${consumer}: ${result[consumer].heap_bytes} bytes`,
        );
        assert(result[consumer].heap_areas.some((a) => a.name.startsWith("npm:@smithy")));
        assert(
          result[consumer].areas.some((a) =>
            a.name.startsWith("npm:@smithy") || a.name.startsWith("npm:@aws")
          ),
        );
      }
      assert(result.masq.areas.some((a) => a.name.startsWith("lib/")), "masq's own code shows up");
      assert(result.masq.heap_areas.some((a) => a.name.startsWith("lib/")), "and its allocations");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
