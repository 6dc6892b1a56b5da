/**
 * `masq run`: wires config -> source, sink, masker -> pipeline. The demo and the benchmark call this same
 * function, so they exercise the real path.
 */
import type { Config } from "./config.ts";
import { redactUrl } from "./config.ts";
import { ConfigError, errorMessage } from "./errors.ts";
import type { Logger } from "./log.ts";
import { runPipeline } from "./pipeline.ts";
import { createPostgresSink } from "./sink/postgres.ts";
import { recordKeyUse } from "./sink/schema.ts";
import { resolveVaultKeyId } from "./lifecycle/keys.ts";
import { redriveVerifier } from "./lifecycle/redrive.ts";
import { openSqsSource } from "./source/sqs.ts";
import { createMasker } from "./transform/mask.ts";
import { rejectionFor, toRecord } from "./transform/record.ts";
import type { Clock, Message, PipelineEvent, Sink, Summary, Transform } from "./types.ts";
import { createVaultCipher, type VaultCipher } from "./vault.ts";

export interface RunOptions {
  log: Logger;
  /** Aborting it drains in-flight work and ends the run. */
  stop?: AbortSignal;
  env?: (name: string) => string | undefined;
  progressEveryMs?: number;
  /** Subscribes to the run's events (metrics, the benchmark). */
  onEvent?: (e: PipelineEvent) => void;
  /** Encrypts originals (dead-lettered bodies, pii_vault), when a vault key is configured. */
  vault?: VaultCipher;
  clock?: Clock;
  /**
   * Replaces the sink or the transform before the pipeline starts: the bench's `--ablate`
   * (lib/bench/ablation.ts), for diagnosis only; `masq run` passes none.
   */
  parts?: (parts: { sink: Sink; transform: Transform }) => { sink: Sink; transform: Transform };
}

/**
 * Connects to PostgreSQL and SQS (failing fast with a ConfigError naming the setting), then runs the
 * pipeline until the queue is drained (or, with `follow`, until stopped).
 *
 * @example
 * ```ts
 * import { runMasq, type RunOptions } from "./run.ts";
 * import type { Config } from "./config.ts";
 * import { createLogger } from "./log.ts";
 * declare const config: Config;
 * const options: RunOptions = { log: createLogger(), onEvent: (e) => console.error(e.type) };
 * const summary = await runMasq(config, options);
 * console.log(JSON.stringify(summary));
 * ```
 */
export async function runMasq(config: Config, opts: RunOptions): Promise<Summary> {
  const { log } = opts;
  for (const warning of config.warnings ?? []) log.warn(warning);
  const masker = createMasker(config.hmacKey, config.hmacKeyId);
  const sink = createPostgresSink(config.databaseUrl, {
    poolSize: config.dbPoolSize,
    log,
    connectTimeoutMs: 10_000,
  });
  try {
    await sink.checkSchema();
    await recordKeyUse(sink.pool, config.hmacKeyId);
  } catch (err) {
    await sink.close().catch(() => {});
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(
      "--database-url / DATABASE_URL",
      `cannot use ${redactUrl(config.databaseUrl)}: ${errorMessage(err)}`,
    );
  }
  log.info("connected to PostgreSQL", { database: redactUrl(config.databaseUrl), pool: config.dbPoolSize });
  let source;
  try {
    source = await openSqsSource({
      queueUrl: config.queueUrl,
      dlqUrl: config.dlqUrl,
      endpoint: config.endpoint,
      region: config.region,
      protocol: config.sqsProtocol,
      batchSize: config.batchSize,
      waitSeconds: config.waitSeconds,
      visibilityTimeout: config.visibilityTimeout,
      concurrency: config.concurrency,
      log,
      // A replay's key is trusted only when `masq redrive` signed it with this same HMAC key.
      verifyRedrive: redriveVerifier(masker),
      ...(opts.env ? { env: opts.env } : {}),
    });
  } catch (err) {
    await sink.close().catch(() => {});
    throw err;
  }
  // The vault key from the configuration, unless the caller brought its own cipher.
  const vault = opts.vault ??
    (config.vaultKey
      ? await createVaultCipher(config.vaultKey, resolveVaultKeyId(opts.env ?? (() => undefined)))
      : undefined);
  const real: Transform = {
    record: (m: Message) => toRecord(m, masker, vault),
    rejection: (m: Message, reason: string) => rejectionFor(m, reason, masker),
  };
  const parts = opts.parts ? opts.parts({ sink, transform: real }) : { sink, transform: real };
  try {
    return await runPipeline({
      source,
      sink: parts.sink,
      transform: parts.transform,
      log,
      follow: config.follow,
      concurrency: config.concurrency,
      connections: config.dbPoolSize,
      maxBackoffMs: config.maxBackoffMs,
      ...(vault ? { vault } : {}),
      ...(opts.stop ? { stop: opts.stop } : {}),
      ...(opts.progressEveryMs !== undefined ? { progressEveryMs: opts.progressEveryMs } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
  } finally {
    source.close();
    await sink.close().catch((err) =>
      log.warn("closing the database pool failed", { error: errorMessage(err) })
    );
  }
}
