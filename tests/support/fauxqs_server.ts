/**
 * fauxqs in a process of its own, so that a test can SIGKILL the "SQS service" mid-run and start it again on
 * the same port and data directory (fauxqs persists queues and messages, in-flight state included, to
 * SQLite there), and so that a test process blocked by an embedded PGlite does not freeze the queue too.
 *
 * Usage: deno run --allow-net --allow-env --allow-read=<data-dir>,<npm cache> --allow-write=<data-dir>
 *          --allow-sys tests/support/fauxqs_server.ts --port <n|0> [--data-dir <dir>]
 * Prints `fauxqs ready <port>` on stdout once it listens; SIGTERM/SIGINT stop it cleanly.
 */
import { parseArgs } from "node:util";
import { startFauxqs } from "fauxqs";

const { values } = parseArgs({
  args: Deno.args,
  options: { port: { type: "string", default: "0" }, "data-dir": { type: "string" } },
  strict: true,
});
const dataDir = values["data-dir"];
const server = await startFauxqs({
  port: Number(values.port),
  host: "127.0.0.1",
  logger: false,
  ...(dataDir ? { dataDir } : {}),
});
console.log(`fauxqs ready ${server.port}`);

let stopping = false;
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(sig, async () => {
    if (stopping) return;
    stopping = true;
    await server.stop();
    Deno.exit(0);
  });
}
