/**
 * The tests' subprocesses: the real masq CLI (with the permissions of `deno task masq`) and every other
 * process a test starts, each through spawnWatched(), with a time limit, its output read as it comes, and
 * a kill and reap for the test's clean-up.
 *
 * @module
 */

import { expandedTask } from "../../scripts/permissions.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const MAIN = `${ROOT}main.ts`;
/** A strong test key (32 bytes of hex text): `masq run` refuses short and published keys. */
export const TEST_KEY = "masq-test-key-7f3a9c21e84b06d5fa1c93e2b7d4068e";

/**
 * The permission flags of a task of deno.json (its permission set written out, `$HOME` expanded), as users
 * run it.
 */
export function taskPermissions(task: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  const home = Deno.env.get("HOME") ?? "";
  return expandedTask(config, task).split(" ").filter((a) => a.startsWith("--allow-") || a === "--no-prompt")
    .map((a) => a.replaceAll("$HOME", home));
}

/** The permission flags of `deno task masq` (which start and demo run), as users run masq. */
export function runPermissions(): string[] {
  return taskPermissions("masq");
}

export interface MasqResult {
  code: number;
  /** The signal that ended the process, if one did. */
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  /** The parsed last stdout line, when it is JSON. */
  summary: Record<string, number> | undefined;
}

export interface MasqEnv {
  queueUrl: string;
  databaseUrl: string;
  extra?: Record<string, string>;
}

function masqEnv(e: MasqEnv): Record<string, string> {
  return {
    SQS_QUEUE_URL: e.queueUrl,
    DATABASE_URL: e.databaseUrl,
    PII_HMAC_KEY: TEST_KEY,
    NO_COLOR: "1",
    HOME: Deno.env.get("HOME") ?? "/root",
    PATH: Deno.env.get("PATH") ?? "",
    ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
    ...e.extra,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Every subprocess a test starts goes through spawnWatched(): it has a time limit after which it is
// SIGKILLed (and whoever collects it gets an error naming the command), its output is read as it comes
// (so a test can wait for a line), and it can be killed and reaped in the test's clean-up.

/** The time limit of a test's subprocess unless the test gives another (MASQ_TEST_PROCESS_TIMEOUT_MS). */
export const PROCESS_TIMEOUT_MS = Number(Deno.env.get("MASQ_TEST_PROCESS_TIMEOUT_MS") ?? 120_000);

export interface SpawnOptions {
  /** SIGKILL after this long (default PROCESS_TIMEOUT_MS). */
  timeoutMs?: number;
  env?: Record<string, string>;
  clearEnv?: boolean;
  cwd?: string;
  /** How errors name the process (default: the program and its arguments). */
  label?: string;
  /** Written to the process's stdin, which is then closed (default: no stdin). */
  stdin?: string;
}

interface Watch {
  label: string;
  timeoutMs: number;
  timedOut: boolean;
  exited: boolean;
  stdout: string;
  stderr: string;
  /** Resolves once the process has ended and its output has been read to the end. */
  done: Promise<Deno.CommandStatus>;
  /** Called whenever output arrives or the process ends. */
  listeners: Set<() => void>;
}

const watches = new WeakMap<Deno.ChildProcess, Watch>();

function watchOf(child: Deno.ChildProcess): Watch {
  const w = watches.get(child);
  if (!w) throw new Error("this process was not started by spawnWatched()");
  return w;
}

/** Starts a subprocess with piped output, read as it arrives, and SIGKILLed when its time limit passes. */
export function spawnWatched(program: string, args: string[], opts: SpawnOptions = {}): Deno.ChildProcess {
  const child = new Deno.Command(program, {
    args,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.clearEnv ? { clearEnv: true } : {}),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  }).spawn();
  if (opts.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    writer.write(new TextEncoder().encode(opts.stdin)).then(() => writer.close()).catch(() => {});
  }
  const timeoutMs = opts.timeoutMs ?? PROCESS_TIMEOUT_MS;
  const w: Watch = {
    label: opts.label ?? [program, ...args].join(" "),
    timeoutMs,
    timedOut: false,
    exited: false,
    stdout: "",
    stderr: "",
    done: undefined as unknown as Promise<Deno.CommandStatus>,
    listeners: new Set(),
  };
  const notify = () => {
    for (const l of [...w.listeners]) l();
  };
  const pump = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
    try {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        w[key] += text;
        notify();
      }
    } catch { /* the process was killed mid-read */ }
  };
  const output = Promise.all([pump(child.stdout, "stdout"), pump(child.stderr, "stderr")]);
  const timer = setTimeout(() => {
    w.timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* ended meanwhile */ }
  }, timeoutMs);
  w.done = child.status.then(async (status) => {
    clearTimeout(timer);
    w.exited = true;
    await output;
    notify();
    return status;
  });
  watches.set(child, w);
  return child;
}

/** Whether a process from spawnWatched() has ended. */
export function hasExited(child: Deno.ChildProcess): boolean {
  return watchOf(child).exited;
}

/** What a process from spawnWatched() has written to stderr so far. */
export function stderrSoFar(child: Deno.ChildProcess): string {
  return watchOf(child).stderr;
}

function tail(text: string, n = 4000): string {
  return text.length > n ? `...${text.slice(-n)}` : text;
}

/**
 * Waits for `pattern` in a process's output (stderr unless told) and returns the match; rejects when the
 * process ends first or `timeoutMs` passes (the process is left running: the test's clean-up reaps it).
 */
export function waitForOutput(
  child: Deno.ChildProcess,
  pattern: RegExp,
  opts: { stream?: "stdout" | "stderr"; timeoutMs?: number } = {},
): Promise<RegExpExecArray> {
  const w = watchOf(child);
  const stream = opts.stream ?? "stderr";
  const ms = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const finish = () => {
      clearTimeout(timer);
      w.listeners.delete(check);
    };
    function check() {
      const m = pattern.exec(w[stream]);
      if (m) {
        finish();
        resolve(m);
      } else if (w.exited) {
        // Ended: the rest of its output may still be on its way; decide once all of it is read.
        finish();
        w.done.then(() => {
          const late = pattern.exec(w[stream]);
          if (late) return resolve(late);
          reject(new Error(`${w.label}: ended without ${pattern} on ${stream}; stderr:\n${tail(w.stderr)}`));
        });
      }
    }
    const timer = setTimeout(() => {
      finish();
      reject(
        new Error(`${w.label}: no ${pattern} on ${stream} within ${ms / 1000} s; stderr:\n${tail(w.stderr)}`),
      );
    }, ms);
    w.listeners.add(check);
    check();
  });
}

function lastJson(stdout: string): Record<string, number> | undefined {
  const last = stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(last);
  } catch {
    return undefined;
  }
}

/**
 * Waits for a process from spawnWatched() to end and returns its output; throws, naming the command, when
 * its time limit killed it.
 */
export async function collect(child: Deno.ChildProcess): Promise<MasqResult> {
  const w = watchOf(child);
  const status = await w.done;
  if (w.timedOut) {
    throw new Error(
      `${w.label}: still running after ${w.timeoutMs / 1000} s, killed (SIGKILL); stderr:\n${tail(w.stderr)}`,
    );
  }
  return {
    code: status.code,
    signal: status.signal,
    stdout: w.stdout,
    stderr: w.stderr,
    summary: lastJson(w.stdout),
  };
}

/** Spawns `masq <args>` (the real CLI, task permissions) with a clean environment and a time limit. */
export function spawnMasq(args: string[], e: MasqEnv, opts: { timeoutMs?: number } = {}): Deno.ChildProcess {
  return spawnWatched(Deno.execPath(), ["run", ...runPermissions(), MAIN, ...args], {
    env: masqEnv(e),
    clearEnv: true,
    cwd: ROOT,
    label: `masq ${args.join(" ")}`,
    ...opts,
  });
}

/** Runs `masq <args>` to completion (SIGKILLed, and an error thrown, after the time limit). */
export function runMasqCli(
  args: string[],
  e: MasqEnv,
  opts: { timeoutMs?: number } = {},
): Promise<MasqResult> {
  return collect(spawnMasq(args, e, opts));
}

/** runMasqCli() with a time limit of `ms`. */
export function runMasqCliWithin(ms: number, args: string[], e: MasqEnv): Promise<MasqResult> {
  return runMasqCli(args, e, { timeoutMs: ms });
}

/** Test clean-up: SIGKILLs a process still running (if any) and waits until it has ended and been read. */
export async function killAndReap(
  child: Deno.ChildProcess | undefined,
  result?: Promise<unknown>,
): Promise<void> {
  if (child) {
    try {
      child.kill("SIGKILL");
    } catch { /* already ended */ }
    const w = watches.get(child);
    await (w ? w.done : child.status).catch(() => {});
  }
  await result?.catch(() => {});
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
