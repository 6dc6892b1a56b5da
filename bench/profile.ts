/**
 * CPU and allocation profiles of benchmark children: V8's sampling profilers through node:inspector (the
 * child needs `--allow-sys`), and a summary of where the time went and where the heap was allocated, by
 * function and by module or package.
 *
 * @module
 */

/** The parts of a V8 .cpuprofile this module reads. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/** One node of a V8 sampling heap profile (Chrome DevTools' .heapprofile): bytes allocated at its frame. */
export interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  /** Bytes of the samples taken at this frame itself (an estimate scaled by the sampling interval). */
  selfSize: number;
  children: HeapNode[];
}

/** The parts of a V8 .heapprofile this module reads. */
export interface HeapProfile {
  head: HeapNode;
}

/** Both profiles of one run. */
export interface Profiles {
  cpu: CpuProfile;
  heap: HeapProfile;
}

/** Mean bytes between two heap samples: ~50,000 samples over a 30,000-message run of masq. */
const HEAP_SAMPLING_BYTES = 32 * 1024;

/**
 * Starts V8's sampling CPU profiler and its sampling heap profiler in this process; `stop()` returns
 * both. The heap profile counts every sampled allocation, including objects the garbage collector has
 * since freed: what it shows is the allocation (the work a collector must do), not what stays live.
 *
 * @example
 * ```ts
 * import { type Profiles, startProfiler } from "./profile.ts";
 * const profiler = await startProfiler();
 * const profiles: Profiles = await profiler.stop();
 * profiles.cpu.samples.length;
 * profiles.heap.head.children.length;
 * ```
 */
export async function startProfiler(intervalUs = 200): Promise<{ stop(): Promise<Profiles> }> {
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: intervalUs });
  await session.post("HeapProfiler.enable");
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: HEAP_SAMPLING_BYTES,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  await session.post("Profiler.start");
  return {
    async stop() {
      const { profile: cpu } = await session.post("Profiler.stop") as unknown as { profile: CpuProfile };
      const { profile: heap } = await session.post("HeapProfiler.stopSampling") as unknown as {
        profile: HeapProfile;
      };
      session.disconnect();
      return { cpu, heap };
    },
  };
}

/** Where the heap profile of a CPU profile's path goes: `x.cpuprofile` -> `x.heapprofile`. */
export function heapProfilePath(cpuPath: string): string {
  return cpuPath.replace(/\.cpuprofile$/, "") + ".heapprofile";
}

/**
 * Stops the profilers, writes the CPU profile to `path` and the heap profile beside it
 * (`heapProfilePath`), their directory created, and returns both summaries.
 */
export async function saveProfile(
  profiler: { stop(): Promise<Profiles> },
  path: string,
): Promise<ReturnType<typeof summarize> & { heap: HeapSummary }> {
  const { cpu, heap } = await profiler.stop();
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(path, JSON.stringify(cpu));
  await Deno.writeTextFile(heapProfilePath(path), JSON.stringify(heap));
  return { ...summarize(cpu), heap: summarizeHeap(heap) };
}

/** One line of a profile summary. */
export interface ProfileRow {
  name: string;
  ms: number;
  /** Share of the profile's busy time (idle excluded), 0..1. */
  share: number;
}

/** Where a frame's code lives: a package, a file of this repository, Deno's runtime, or V8's own work. */
export function areaOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  // Deno's npm cache (.../registry.npmjs.org/<pkg>/<version>/...) or a node_modules directory (the last
  // `node_modules/<pkg>/` of the path: `.deno/<pkg>@<version>/node_modules/<pkg>/...`).
  const npm = /\/registry\.npmjs\.org\/((?:@[^/]+\/)?[^/]+)\//.exec(url) ??
    /.*\/node_modules\/((?:@[^/]+\/)?[^/.][^/]*)\//.exec(url);
  if (npm) return `npm:${npm[1]}`;
  const ext = /^(ext:[^/]+|node:[^/]+)/.exec(url);
  if (ext) return ext[1];
  const local = /\/((?:lib|bench)\/.*|main\.ts)$/.exec(url);
  if (local) return local[1];
  return url.split("/").slice(-2).join("/");
}

/**
 * The busiest `top` functions by self time, and self time by area (package, file, runtime), as shares of
 * the busy time (idle excluded).
 *
 * @example
 * ```ts
 * import { summarize } from "./profile.ts";
 * const s = summarize({ nodes: [{ id: 1, callFrame: { functionName: "f", url: "", lineNumber: 0 } }],
 *   samples: [1], timeDeltas: [100] });
 * s.busyMs; // 0.1
 * ```
 */
export function summarize(
  profile: CpuProfile,
  top = 25,
): { busyMs: number; idleMs: number; functions: ProfileRow[]; areas: ProfileRow[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    const node = byId.get(id);
    if (!node) return;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") {
      idle += us;
      return;
    }
    busy += us;
    const a = areaOf(url, functionName);
    const name = `${functionName || "(anonymous)"} ${a}${url ? `:${lineNumber + 1}` : ""}`;
    fn.set(name, (fn.get(name) ?? 0) + us);
    area.set(a, (area.get(a) ?? 0) + us);
  });
  const rows = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({
      name,
      ms: Math.round(us / 100) / 10,
      share: busy > 0 ? Math.round((us / busy) * 1000) / 1000 : 0,
    }));
  return {
    busyMs: Math.round(busy / 100) / 10,
    idleMs: Math.round(idle / 100) / 10,
    functions: rows(fn),
    areas: rows(area),
  };
}

/** One line of a heap summary. */
export interface HeapRow {
  name: string;
  bytes: number;
  /** Share of all the bytes allocated, 0..1. */
  share: number;
}

/** A heap profile's total and its biggest allocators. */
export interface HeapSummary {
  bytes: number;
  functions: HeapRow[];
  areas: HeapRow[];
}

/** Areas whose allocations are made on behalf of a caller: the runtime, Node's modules, V8's builtins. */
function isRuntime(area: string): boolean {
  return area.startsWith("ext:") || area.startsWith("node:") || area.startsWith("(");
}

/**
 * Bytes allocated by function (its own allocations) and by area. An allocation made inside the runtime
 * (a builtin such as `Array.prototype.join`, Deno's Node compatibility layer) is charged to the nearest
 * caller in a package or in this repository: `textArray` joining its strings is the sink's allocation,
 * not the runtime's. What has no such caller stays with the runtime area.
 *
 * @example
 * ```ts
 * import { summarizeHeap } from "./profile.ts";
 * const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0 });
 * const s = summarizeHeap({ head: { callFrame: frame("(root)", ""), selfSize: 0, children: [
 *   { callFrame: frame("f", "file:///r/lib/pipeline.ts"), selfSize: 100, children: [
 *     { callFrame: frame("join", ""), selfSize: 300, children: [] },
 *   ] },
 * ] } });
 * s.areas[0]; // { name: "lib/pipeline.ts", bytes: 400, share: 1 }
 * ```
 */
export function summarizeHeap(profile: HeapProfile, top = 25): HeapSummary {
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  let total = 0;
  // Iterative: a deep stack of frames must not overflow ours.
  const stack: { node: HeapNode; owner: string | null }[] = [{ node: profile.head, owner: null }];
  while (stack.length > 0) {
    const { node, owner } = stack.pop()!;
    const { functionName, url, lineNumber } = node.callFrame;
    const own = areaOf(url, functionName);
    const charged = isRuntime(own) ? owner ?? own : own;
    if (node.selfSize > 0) {
      total += node.selfSize;
      const name = `${functionName || "(anonymous)"} ${own}${url ? `:${lineNumber + 1}` : ""}`;
      fn.set(name, (fn.get(name) ?? 0) + node.selfSize);
      area.set(charged, (area.get(charged) ?? 0) + node.selfSize);
    }
    for (const child of node.children) stack.push({ node: child, owner: isRuntime(own) ? owner : own });
  }
  const rows = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, bytes]) => ({
      name,
      bytes,
      share: total > 0 ? Math.round((bytes / total) * 1000) / 1000 : 0,
    }));
  return { bytes: total, functions: rows(fn), areas: rows(area) };
}
