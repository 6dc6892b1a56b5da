/**
 * The tests' SQS: a client of the embedded emulator, queue depths and receiving everything in a queue,
 * and fauxqs in a process of its own (to SIGKILL and restart mid-run).
 *
 * @module
 */
import { GetQueueAttributesCommand, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { createSqsClient } from "../../lib/source/sqs.ts";
import { collect, killAndReap, ROOT, spawnWatched, stderrSoFar, waitForOutput } from "./processes.ts";

export function sqsClient(sqs: { endpoint: string }): SQSClient {
  return createSqsClient({ endpoint: sqs.endpoint, region: "us-east-1" }, "json");
}

/** Visible + in-flight + delayed messages of a queue. */
export async function queueDepth(
  client: SQSClient,
  url: string,
): Promise<{ visible: number; inFlight: number }> {
  const res = await client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["All"] }));
  return {
    visible: Number(res.Attributes?.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(res.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
  };
}

/** Receives everything visible in a queue (for inspecting the dead-letter queue). */
export async function receiveAll(client: SQSClient, url: string) {
  const out = [];
  for (;;) {
    const res = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        MessageAttributeNames: ["All"],
        VisibilityTimeout: 60,
      }),
    );
    if (!res.Messages?.length) return out;
    out.push(...res.Messages);
  }
}

export interface FauxqsProcess {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  port: number;
  queueUrl(name: string): string;
  /** SIGKILL (or another signal) and wait for the process to end. */
  kill(signal?: Deno.Signal): Promise<void>;
  /** SIGTERM and wait (idempotent). */
  stop(): Promise<void>;
}

const FAUXQS_SERVER = `${ROOT}tests/support/fauxqs_server.ts`;

/**
 * Starts fauxqs (tests/support/fauxqs_server.ts) as a subprocess with explicit permissions, on `port`
 * (a free one when absent) and with `dataDir` as its SQLite persistence, and waits for its ready line. It
 * is SIGKILLed after `timeoutMs` (default 10 minutes) if the test has not stopped it.
 */
export async function startFauxqsProcess(
  opts: { port?: number; dataDir?: string; timeoutMs?: number } = {},
): Promise<FauxqsProcess> {
  const dirs = opts.dataDir ? [opts.dataDir] : [];
  const args = [
    "run",
    "--allow-net=127.0.0.1,0.0.0.0",
    "--allow-env=FAUXQS_PORT,FAUXQS_HOST,FAUXQS_DEFAULT_REGION,FAUXQS_LOGGER,FAUXQS_INIT",
    "--allow-sys=networkInterfaces",
    ...(dirs.length ? [`--allow-read=${dirs.join(",")}`, `--allow-write=${dirs.join(",")}`] : []),
    FAUXQS_SERVER,
    "--port",
    String(opts.port ?? 0),
    ...(opts.dataDir ? ["--data-dir", opts.dataDir] : []),
  ];
  // A port just released by a killed process can take a moment to be bindable again.
  for (let attempt = 1;; attempt++) {
    const child = spawnWatched(Deno.execPath(), args, {
      env: { NO_COLOR: "1" },
      cwd: ROOT,
      timeoutMs: opts.timeoutMs ?? 600_000,
      label: `fauxqs process (port ${opts.port ?? "any"})`,
    });
    let port: number;
    try {
      port = Number(
        (await waitForOutput(child, /fauxqs ready (\d+)/, { stream: "stdout", timeoutMs: 30_000 }))[1],
      );
    } catch (err) {
      await killAndReap(child);
      if (attempt < 5 && /EADDRINUSE|AddrInUse|address already in use/i.test(stderrSoFar(child))) {
        await new Promise((r) => setTimeout(r, 500 * attempt));
        continue;
      }
      throw err;
    }
    const endpoint = `http://127.0.0.1:${port}`;
    let ended: Promise<void> | undefined;
    const end = (signal: Deno.Signal) =>
      ended ??= (async () => {
        try {
          child.kill(signal);
        } catch { /* already gone */ }
        // A SIGTERM not obeyed within 10 s becomes a SIGKILL.
        const timer = setTimeout(() => killAndReap(child), 10_000);
        await killAndReap(undefined, collect(child));
        clearTimeout(timer);
      })();
    return {
      endpoint,
      port,
      queueUrl: (name) => `${endpoint}/000000000000/${name}`,
      kill: (signal = "SIGKILL") => end(signal),
      stop: () => end("SIGTERM"),
    };
  }
}
