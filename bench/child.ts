/**
 * The benchmark's child processes, seen from the parent: a Deno script started with explicit permissions
 * (never -A), spoken to in JSON lines over stdin/stdout, its stderr kept for the error message, and killed
 * and reaped on every way out.
 *
 * @module
 */

/** A running child script. */
export interface Child {
  readonly pid: number;
  /** The next stdout line parsed as JSON; throws (with the child's stderr) when it ends or `timeoutMs` passes. */
  next<T>(timeoutMs: number): Promise<T>;
  /** Writes one JSON line to the child's stdin. */
  send(message: unknown): Promise<void>;
  /** Closes stdin, waits up to `graceMs` for the child to exit, then SIGKILLs it; always reaps it. */
  end(graceMs?: number): Promise<Deno.CommandStatus>;
  /** SIGKILL and reap (idempotent). */
  kill(): Promise<void>;
  /** The last 8 KiB of the child's stderr. */
  stderr(): string;
}

const STDERR_KEEP = 8192;

/** Every child not yet reaped, so that a signal to the parent can take them down with it. */
const live = new Set<Child>();

/**
 * SIGKILLs and reaps every child still running.
 *
 * @example
 * ```ts
 * import { killAll } from "./child.ts";
 * Deno.addSignalListener("SIGINT", () => killAll().then(() => Deno.exit(130)));
 * ```
 */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.kill()));
}

/**
 * Starts `deno run <permissions> <script> <args>` from the repository root.
 *
 * @example
 * ```ts
 * import { spawnScript } from "./child.ts";
 * const child = spawnScript(new URL("./sqs_server.ts", import.meta.url), ["--allow-net=127.0.0.1"], []);
 * await child.kill();
 * ```
 */
export function spawnScript(
  script: URL,
  permissions: readonly string[],
  args: readonly string[],
  opts: { v8Flags?: readonly string[]; cwd?: string; env?: Record<string, string> } = {},
): Child {
  // "deno" from PATH, not Deno.execPath(): `--allow-run=deno` grants the former, and a symlinked install
  // resolves the latter to another path.
  const proc = new Deno.Command("deno", {
    args: [
      "run",
      ...(opts.v8Flags?.length ? [`--v8-flags=${opts.v8Flags.join(",")}`] : []),
      ...permissions,
      script.pathname,
      ...args,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...opts.env },
    clearEnv: true,
    cwd: opts.cwd ?? new URL("../", import.meta.url).pathname,
  }).spawn();

  let errText = "";
  const errDone = proc.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({
      write(s) {
        errText = (errText + s).slice(-STDERR_KEEP);
      },
    }),
  ).catch(() => {});
  const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const writer = proc.stdin.getWriter();
  const encoder = new TextEncoder();
  let buf = "";
  let ended: Promise<Deno.CommandStatus> | undefined;
  let stdinClosed = false;
  // One read at a time: a read abandoned by a timeout is picked up by the next call, not lost.
  let reading: Promise<ReadableStreamReadResult<string>> | undefined;

  async function drainStdout(): Promise<void> {
    try {
      if (reading && (await reading).done) return;
      while (!(await reader.read()).done) { /* discard */ }
    } catch { /* closed */ }
  }

  const describe = (what: string) => {
    const tail = errText.trim().split("\n").slice(-20).join("\n");
    return new Error(
      `${script.pathname.split("/").pop()} (pid ${proc.pid}) ${what}${tail ? `:\n${tail}` : ""}`,
    );
  };

  const child: Child = {
    pid: proc.pid,
    async next<T>(timeoutMs: number): Promise<T> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(describe(`gave no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        for (;;) {
          const nl = buf.indexOf("\n");
          if (nl >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line === "") continue;
            try {
              return JSON.parse(line) as T;
            } catch {
              throw describe(`printed a line that is not JSON: ${JSON.stringify(line.slice(0, 200))}`);
            }
          }
          reading ??= reader.read();
          const { value, done } = await Promise.race([reading, timeout]);
          reading = undefined;
          if (done) {
            const status = await proc.status;
            await errDone;
            throw describe(`exited (code ${status.code}${status.signal ? `, ${status.signal}` : ""})`);
          }
          buf += value;
        }
      } finally {
        clearTimeout(timer);
      }
    },
    async send(message) {
      await writer.write(encoder.encode(JSON.stringify(message) + "\n"));
    },
    end(graceMs = 10_000) {
      return ended ??= (async () => {
        if (!stdinClosed) {
          stdinClosed = true;
          await writer.close().catch(() => {});
        }
        const out = drainStdout();
        let timer: ReturnType<typeof setTimeout> | undefined;
        const killed = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            try {
              proc.kill("SIGKILL");
            } catch { /* already gone */ }
            resolve();
          }, graceMs);
        });
        await Promise.race([proc.status, killed]);
        clearTimeout(timer);
        const status = await proc.status;
        await Promise.all([out, errDone]);
        live.delete(child);
        return status;
      })();
    },
    async kill() {
      try {
        proc.kill("SIGKILL");
      } catch { /* already gone */ }
      await this.end(0);
    },
    stderr: () => errText,
  };
  live.add(child);
  return child;
}
