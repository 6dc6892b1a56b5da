/**
 * CPU profiles of benchmark children: V8's sampling profiler through node:inspector (the child needs
 * `--allow-sys`), and a summary of where the time went, by function and by module or package.
 *
 * @module
 */

/** The parts of a V8 .cpuprofile this module reads. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Starts V8's sampling profiler in this process; `stop()` returns the profile.
 *
 * @example
 * ```ts
 * import { startProfiler } from "./profile.ts";
 * const profiler = await startProfiler();
 * const profile = await profiler.stop();
 * profile.samples.length;
 * ```
 */
export async function startProfiler(intervalUs = 200): Promise<{ stop(): Promise<CpuProfile> }> {
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: intervalUs });
  await session.post("Profiler.start");
  return {
    async stop() {
      const { profile } = await session.post("Profiler.stop") as unknown as { profile: CpuProfile };
      session.disconnect();
      return profile;
    },
  };
}

/**
 * Stops the profiler, writes the profile to `path` (its directory created) and returns its summary.
 */
export async function saveProfile(
  profiler: { stop(): Promise<CpuProfile> },
  path: string,
): Promise<ReturnType<typeof summarize>> {
  const profile = await profiler.stop();
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(path, JSON.stringify(profile));
  return summarize(profile);
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
  const local = /\/(lib\/.*|main\.ts)$/.exec(url);
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
