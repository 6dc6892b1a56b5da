/**
 * Embedded services for the demo, the tests and the benchmark: fauxqs (an SQS emulator speaking the
 * real wire protocol, in-process) and PGlite (PostgreSQL compiled to WebAssembly) behind its socket
 * server, so masq reaches both exactly as it reaches the real ones.
 */
import { startFauxqs } from "fauxqs";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

export interface EmbeddedSqs {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  port: number;
  /** Creates a queue (idempotent) and returns its URL on 127.0.0.1. */
  createQueue(name: string, attributes?: Record<string, string>): string;
  queueUrl(name: string): string;
  /** Puts a message straight into a queue (no HTTP round trip): for seeding large queues fast. */
  send(queueName: string, body: string): void;
  stop(): Promise<void>;
}

/**
 * Starts fauxqs on 127.0.0.1 (a free port unless given; `dataDir` persists state across restarts).
 *
 * @example Both services, as the demo starts them
 * ```ts
 * import { type EmbeddedPostgres, type EmbeddedSqs, startEmbeddedPostgres, startEmbeddedSqs } from "./embedded.ts";
 *
 * const sqs: EmbeddedSqs = await startEmbeddedSqs();
 * const pgl: EmbeddedPostgres = await startEmbeddedPostgres();
 * const queueUrl = sqs.createQueue("login-queue", { VisibilityTimeout: "30" });
 * sqs.send("login-queue", JSON.stringify({ user_id: "u1" }));
 * console.log(queueUrl, pgl.url); // SQS_QUEUE_URL and DATABASE_URL for masq
 * await pgl.stop();
 * await sqs.stop();
 * ```
 */
export async function startEmbeddedSqs(opts: { port?: number; dataDir?: string } = {}): Promise<EmbeddedSqs> {
  const server = await startFauxqs({
    port: opts.port ?? 0,
    host: "127.0.0.1",
    logger: false,
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
  });
  const endpoint = `http://127.0.0.1:${server.port}`;
  const queueUrl = (name: string) => `${endpoint}/000000000000/${name}`;
  return {
    endpoint,
    port: server.port,
    queueUrl,
    createQueue(name, attributes = {}) {
      server.createQueue(name, { attributes });
      return queueUrl(name);
    },
    send(queueName, body) {
      server.sendMessage(queueName, body);
    },
    stop: () => server.stop(),
  };
}

export interface EmbeddedPostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres; serves one connection at a time. */
  url: string;
  db: PGlite;
  stop(): Promise<void>;
}

/**
 * Starts an in-memory PGlite behind a PostgreSQL wire-protocol socket on 127.0.0.1.
 * PGlite has one backend; its socket server multiplexes up to 16 client connections onto it. Example:
 * startEmbeddedSqs().
 */
export async function startEmbeddedPostgres(): Promise<EmbeddedPostgres> {
  const db = await PGlite.create();
  // The multiplexer lets several clients (pools, concurrent masq processes) share the one backend; masq
  // writes each batch as a single statement, so interleaving between clients stays atomic.
  const server = new PGLiteSocketServer({ db, port: 0, host: "127.0.0.1", maxConnections: 16 });
  await server.start();
  return {
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    db,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
