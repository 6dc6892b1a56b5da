/**
 * The benchmark's SQS: fauxqs in a process of its own, so that the emulator's work does not compete with the
 * consumer being measured for one JavaScript thread. Seeding happens in here too (no HTTP round trip per
 * message): seeding is not measured, and 200,000 messages must not take minutes.
 *
 * Usage: deno run --allow-net=127.0.0.1 --allow-env=FAUXQS_* --allow-sys=networkInterfaces,cpus
 *          bench/sqs_server.ts
 * Prints `{"ready":true,"port":<port>}` once it listens, then answers one JSON line on stdout for each JSON
 * line on stdin:
 *   {"op":"seed","queue":"q","n":50000,"seed":7,"badRate":0.01,"attributes":{...}}
 *     -> {"ok":true,"good":49503,"bad":497}  (creates the queue, then sends realistic(i) for i < n)
 *   {"op":"drop","queue":"q"}  -> {"ok":true}  (deletes the queue and its "-dlq")
 *   {"op":"usage","from":t0,"to":t1}  -> {"ok":true,"usage":{"machineCores":1.5,"selfCores":0.4}}
 *     (the machine's and this process's CPU over that window of epoch ms, bench/machine.ts; the
 *     machine's needs --allow-sys=cpus, else it is null; usage is null for a window that is empty or not
 *     inside the samples)
 * Ends when stdin closes, or on SIGTERM/SIGINT.
 *
 * @module
 */
import { startFauxqs } from "fauxqs";
import os from "node:os";
import process from "node:process";
import { realistic } from "./synthetic.ts";
import { startMachineSampler } from "./machine.ts";

/** One request on stdin. */
export type ServerRequest =
  | {
    op: "seed";
    queue: string;
    n: number;
    seed: number;
    badRate: number;
    attributes?: Record<string, string>;
  }
  | { op: "drop"; queue: string }
  | { op: "usage"; from: number; to: number };

const server = await startFauxqs({ port: 0, host: "127.0.0.1", logger: false });
const sampler = startMachineSampler(() => {
  const u = process.cpuUsage();
  return u.user + u.system;
}, () => os.cpus().map((c) => c.times));

let stopping = false;
async function stop(): Promise<never> {
  if (!stopping) {
    stopping = true;
    sampler.stop();
    await server.stop().catch(() => {});
  }
  Deno.exit(0);
}
for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(sig, () => void stop());

function answer(reply: Record<string, unknown>): void {
  console.log(JSON.stringify(reply));
}

function handle(req: ServerRequest): Record<string, unknown> {
  switch (req.op) {
    case "seed": {
      server.createQueue(req.queue, { attributes: req.attributes ?? {} });
      let bad = 0;
      for (let i = 0; i < req.n; i++) {
        const m = realistic(i, { seed: req.seed, badRate: req.badRate });
        if (m.bad) bad++;
        server.sendMessage(req.queue, m.body);
      }
      return { ok: true, good: req.n - bad, bad };
    }
    case "drop":
      server.deleteQueue(req.queue);
      server.deleteQueue(`${req.queue}-dlq`);
      return { ok: true };
    case "usage":
      return { ok: true, usage: sampler.usage(req.from, req.to) };
    default:
      return { ok: false, error: `unknown op ${JSON.stringify((req as { op?: unknown }).op)}` };
  }
}

answer({ ready: true, port: server.port });

let buf = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buf += chunk;
  let nl: number;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const line = buf.slice(0, nl).trim();
    buf = buf.slice(nl + 1);
    if (line === "") continue;
    try {
      answer(handle(JSON.parse(line)));
    } catch (err) {
      answer({ ok: false, error: err instanceof Error ? err.message : String(err) });
    }
  }
}
await stop();
