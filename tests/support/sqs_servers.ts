/**
 * The SQS servers the tests run masq against, behind one shape: fauxqs (embedded, in the test process) and
 * moto's server (`moto_server`, a Python process started by the test on a port of 56440-56459 and killed
 * after). Queues are made through the SQS API, as a producer would.
 *
 * @module
 */
import { CreateQueueCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { startEmbeddedSqs } from "../../lib/embedded.ts";
import { createSqsClient } from "../../lib/source/sqs.ts";
import { killAndReap, spawnWatched, stderrSoFar } from "./processes.ts";

export type SqsServerKind = "fauxqs" | "moto";

export interface SqsServer {
  kind: SqsServerKind;
  endpoint: string;
  /** A JSON-protocol client of the server (the test's producer and inspector). */
  client: SQSClient;
  /** Creates a queue through CreateQueue and returns its URL. */
  createQueue(name: string, attributes?: Record<string, string>): Promise<string>;
  stop(): Promise<void>;
}

/** The ports this branch's tests may give moto_server (see the brief's port ranges). */
const MOTO_PORTS = { first: 56440, last: 56459 };

function portFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** Where moto_server is, or undefined (the test then fails saying so). */
export function motoServerPath(): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/moto_server`).isFile) return `${dir}/moto_server`;
    } catch { /* not here */ }
  }
  return undefined;
}

async function startMoto(): Promise<SqsServer> {
  const program = motoServerPath();
  if (program === undefined) {
    throw new Error("moto_server is not on PATH: install moto[server] (pip install 'moto[server]==5.2.1')");
  }
  let port = MOTO_PORTS.first;
  while (port <= MOTO_PORTS.last && !portFree(port)) port++;
  if (port > MOTO_PORTS.last) {
    throw new Error(`no free port for moto_server in ${MOTO_PORTS.first}-${MOTO_PORTS.last}`);
  }
  const child = spawnWatched(program, ["-H", "127.0.0.1", "-p", String(port)], {
    timeoutMs: 900_000,
    label: `moto_server on ${port}`,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/root" },
    clearEnv: true,
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`${endpoint}/moto-api/`);
      await res.body?.cancel();
      break;
    } catch {
      if (Date.now() > until) {
        await killAndReap(child);
        throw new Error(
          `moto_server did not answer on ${port} within 30 s: ${stderrSoFar(child).slice(-2000)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const client = createSqsClient({ endpoint, region: "us-east-1" }, "json");
  return {
    kind: "moto",
    endpoint,
    client,
    createQueue: (name, attributes = {}) => createQueue(client, endpoint, name, attributes),
    async stop() {
      client.destroy();
      await killAndReap(child);
    },
  };
}

/** Creates a queue; its URL on `endpoint` (fauxqs answers with a host name under sqs.<region>.). */
async function createQueue(
  client: SQSClient,
  endpoint: string,
  name: string,
  attributes: Record<string, string>,
): Promise<string> {
  const res = await client.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
  return `${endpoint}${res.QueueUrl!.replace(/^[a-z]+:\/\/[^/]+/i, "")}`;
}

async function startFauxqs(): Promise<SqsServer> {
  const sqs = await startEmbeddedSqs();
  const client = createSqsClient({ endpoint: sqs.endpoint, region: "us-east-1" }, "json");
  return {
    kind: "fauxqs",
    endpoint: sqs.endpoint,
    client,
    createQueue: (name, attributes = {}) => createQueue(client, sqs.endpoint, name, attributes),
    async stop() {
      client.destroy();
      await sqs.stop();
    },
  };
}

/** Starts a server of `kind`. */
export function startSqsServer(kind: SqsServerKind): Promise<SqsServer> {
  return kind === "moto" ? startMoto() : startFauxqs();
}

export const SQS_SERVERS: readonly SqsServerKind[] = ["fauxqs", "moto"];
