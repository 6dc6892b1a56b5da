/**
 * How masq is stopped (docs/sqs.md "Stopping"): one SIGTERM or SIGINT, however many copies of it arrive,
 * is one graceful stop. A terminal's Ctrl-C, `timeout` and supervisors signal the whole process group, and
 * `deno task` forwards the signal to its child too, so masq gets two or three copies within milliseconds:
 * copies within REPEAT_WINDOW_MS of the first are the same stop. A person forces an immediate exit on
 * purpose with another signal after that window, or with SIGQUIT (Ctrl-\) at any time. And when the
 * process that started masq dies (a `kill -9` of `deno task`), masq stops gracefully instead of running on
 * as an orphan.
 *
 * @module
 */
import type { Logger } from "./log.ts";

/** Copies of a stop signal this soon after the first (ms) are the same stop, not a request to force. */
export const REPEAT_WINDOW_MS = 1000;
/** How often the parent process is looked at (ms): one getppid() call. */
export const PARENT_POLL_MS = 1000;

export type StopSignal = "SIGINT" | "SIGTERM";

/** What the stop controller does with each signal; exit() is the immediate way out. */
export interface SignalPolicy {
  log: Logger;
  now(): number;
  exit(code: number): void;
}

/**
 * The decisions, without the process: `signal(sig)` for each SIGINT/SIGTERM, `quit()` for SIGQUIT,
 * `parentGone()` when the parent died. The returned signal aborts on the first stop.
 *
 * @example
 * ```ts
 * import { createStopper } from "./signals.ts";
 * import { silentLogger } from "./log.ts";
 * const stopper = createStopper({ log: silentLogger, now: () => Date.now(), exit: (code) => Deno.exit(code) });
 * stopper.signal("SIGTERM"); // stopping
 * stopper.signal("SIGINT"); // a copy within REPEAT_WINDOW_MS: the same stop
 * console.log(stopper.stop.aborted); // true
 * ```
 */
export function createStopper(policy: SignalPolicy) {
  const ctl = new AbortController();
  let first = 0;
  const forceNow = (why: string) => {
    policy.log.warn(`${why}: exiting now; in-flight messages will be redelivered`);
    policy.exit(1);
  };
  return {
    stop: ctl.signal,
    signal(sig: StopSignal) {
      if (!ctl.signal.aborted) {
        first = policy.now();
        policy.log.info(
          `${sig}: stopping; finishing in-flight batches (another ${sig} after ${
            REPEAT_WINDOW_MS / 1000
          } s, or SIGQUIT, exits at once)`,
        );
        ctl.abort();
        return;
      }
      if (policy.now() - first < REPEAT_WINDOW_MS) {
        // The same stop, delivered again (the process group and a wrapper both signalled masq).
        policy.log.debug(`${sig} again within ${REPEAT_WINDOW_MS} ms: the same stop`);
        return;
      }
      forceNow(`${sig} again`);
    },
    quit() {
      forceNow("SIGQUIT");
    },
    parentGone(ppid: number) {
      if (ctl.signal.aborted) return;
      first = policy.now();
      policy.log.warn("the parent process exited: stopping; finishing in-flight batches", { ppid });
      ctl.abort();
    },
  };
}

/**
 * Installs the stop on this process: SIGINT/SIGTERM and SIGQUIT listeners, and a cheap poll of the parent
 * process id (unreferenced: it never keeps masq alive). A parent id that changes means the parent died and
 * masq was re-parented. Not polled when masq's parent is already init or none (PID 1 in a container,
 * started by systemd, or detached with setsid): nothing can die then.
 */
export function stopOnSignals(log: Logger): AbortSignal {
  const stopper = createStopper({ log, now: () => performance.now(), exit: (code) => Deno.exit(code) });
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => stopper.signal(sig));
  Deno.addSignalListener("SIGQUIT", () => stopper.quit());
  const parent = Deno.ppid;
  if (parent > 1) {
    const timer = setInterval(() => {
      if (Deno.ppid !== parent) {
        clearInterval(timer);
        stopper.parentGone(parent);
      }
    }, PARENT_POLL_MS);
    Deno.unrefTimer(timer);
  }
  return stopper.stop;
}
