/**
 * What the whole machine spent while a consumer ran: the CPU of every process (the consumer, the SQS
 * emulator, PostgreSQL, anything else), from the operating system's per-CPU times (node:os `cpus()`,
 * which needs `--allow-sys=cpus`), sampled by the emulator's process every SAMPLE_EVERY_MS with the
 * emulator's own CPU time beside it. The bench reads it for each run's window
 * (from "go" to the last delete) to show where a message's CPU goes on the machine, not only in the
 * consumer: on two cores the consumer, the emulator and PostgreSQL share the same cores, so what
 * PostgreSQL spends per row is throughput the consumer cannot have (see bench/BENCHMARKS.md).
 *
 * @module
 */

/**
 * How often the emulator's process samples the counters, ms. A sample (`os.cpus()`) costs that process a
 * little CPU, charged alike to the runs of both consumers.
 */
export const SAMPLE_EVERY_MS = 25;

/** One reading: epoch ms, the machine's busy and total CPU time (ms, all CPUs), the sampler's CPU µs. */
export interface MachineSample {
  at: number;
  busy: number;
  total: number;
  selfUs: number;
}

/** The machine's and the sampling process's average use over a window, in cores (1 = one core's time). */
export interface MachineUsage {
  /** Cores busy on the whole machine (null where the CPU times cannot be read). */
  machineCores: number | null;
  /** Cores the sampling process (the emulator) used. */
  selfCores: number;
}

/** The per-CPU times node:os `cpus()` gives, ms. */
export interface CpuTimes {
  user: number;
  nice: number;
  sys: number;
  idle: number;
  irq: number;
}

/**
 * Busy and total CPU time of all CPUs together, ms: busy is everything but idle.
 *
 * @example
 * ```ts
 * import { cpuTotals } from "./machine.ts";
 * cpuTotals([{ user: 100, nice: 0, sys: 50, idle: 850, irq: 0 }, { user: 0, nice: 0, sys: 0, idle: 1000, irq: 0 }]);
 * // { busy: 150, total: 2000 }
 * ```
 */
export function cpuTotals(cpus: readonly CpuTimes[]): { busy: number; total: number } {
  let busy = 0;
  let idle = 0;
  for (const c of cpus) {
    busy += c.user + c.nice + c.sys + c.irq;
    idle += c.idle;
  }
  return { busy, total: busy + idle };
}

/**
 * The average use over [from, to] (epoch ms), each end read between the two samples around it (linear
 * in time); null when the window is empty or not inside the samples. Machine cores are the busy share of
 * all CPU time times the number of CPUs.
 *
 * @example
 * ```ts
 * import { usageBetween } from "./machine.ts";
 * const samples = [
 *   { at: 0, busy: 0, total: 0, selfUs: 0 },
 *   { at: 1000, busy: 1000, total: 2000, selfUs: 250_000 },
 * ];
 * usageBetween(samples, 0, 1000, 2); // { machineCores: 1, selfCores: 0.25 }
 * ```
 */
export function usageBetween(
  samples: readonly MachineSample[],
  from: number,
  to: number,
  cpus: number,
): MachineUsage | null {
  if (samples.length < 2 || !(to > from) || from < samples[0].at || to > samples[samples.length - 1].at) {
    return null;
  }
  const a = sampleAt(samples, from);
  const b = sampleAt(samples, to);
  const total = b.total - a.total;
  return {
    machineCores: total > 0 ? ((b.busy - a.busy) / total) * cpus : null,
    selfCores: (b.selfUs - a.selfUs) / 1000 / (to - from),
  };
}

/** The counters at time t, between the samples around it. */
function sampleAt(samples: readonly MachineSample[], t: number): MachineSample {
  let i = 1;
  while (i < samples.length - 1 && samples[i].at < t) i++;
  const a = samples[i - 1];
  const b = samples[i];
  const f = b.at > a.at ? (t - a.at) / (b.at - a.at) : 1;
  const mix = (x: number, y: number) => x + (y - x) * f;
  return { at: t, busy: mix(a.busy, b.busy), total: mix(a.total, b.total), selfUs: mix(a.selfUs, b.selfUs) };
}

/**
 * Starts sampling in this process (every SAMPLE_EVERY_MS, the last ten minutes kept); `usage()` answers
 * for a window. Where the CPU times cannot be read (no `--allow-sys=cpus`), only this process's CPU is
 * sampled and `machineCores` is null.
 *
 * @example
 * ```ts
 * import os from "node:os";
 * import { startMachineSampler } from "./machine.ts";
 * const sampler = startMachineSampler(() => 0, () => os.cpus().map((c) => c.times));
 * const from = Date.now();
 * await new Promise((r) => setTimeout(r, 100));
 * sampler.usage(from, Date.now());
 * sampler.stop();
 * ```
 */
export function startMachineSampler(selfUs: () => number, cpus: () => readonly CpuTimes[]): {
  usage(from: number, to: number): MachineUsage | null;
  stop(): void;
} {
  const samples: MachineSample[] = [];
  let readable = true;
  let count = 1;
  const take = () => {
    let stat: { busy: number; total: number } | null = null;
    if (readable) {
      try {
        const times = cpus();
        count = times.length;
        stat = cpuTotals(times);
      } catch {
        readable = false;
      }
    }
    const at = Date.now();
    samples.push({ at, busy: stat?.busy ?? 0, total: stat?.total ?? 0, selfUs: selfUs() });
    while (samples.length > 0 && samples[0].at < at - 600_000) samples.shift();
  };
  take();
  const timer = setInterval(take, SAMPLE_EVERY_MS);
  return {
    usage(from, to) {
      take();
      const u = usageBetween(samples, from, to, count);
      return u && (readable ? u : { ...u, machineCores: null });
    },
    stop: () => clearInterval(timer),
  };
}
