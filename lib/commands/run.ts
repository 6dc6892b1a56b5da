/**
 * `masq run`: consume the queue into PostgreSQL; the summary is the last line of stdout. Metrics (with
 * `--metrics-port`) and progress subscribe to the run's events.
 */
import { buildConfig } from "../config.ts";
import { secretsOf } from "../secrets.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import { createLogger, writeStderr } from "../log.ts";
import { createMetrics, serveMetrics } from "../metrics.ts";
import { createProgress } from "../progress.ts";
import { runMasq, type RunOptions } from "../masq.ts";
import type { PipelineEvent } from "../types.ts";
import type { Command } from "./command.ts";
import { ingestVaultKeys } from "../ingest_vault.ts";

export const run: Command = {
  usage: "run [--follow] [flags]   consume the queue into user_logins; exit once it is drained",
  flags: { follow: { type: "boolean" } },
  settings: true,
  async run(ctx) {
    const config = buildConfig(ctx.values, ctx.env, ctx.readFile);
    // The sealed vault's public key (and a refusal of any key that opens the vault), before anything starts.
    const sealed = await ingestVaultKeys(config, ctx.env, ctx.readFile);
    const secrets = secretsOf(config);
    let writeLine = (line: string) => writeStderr(line + "\n");
    const log = createLogger({
      format: config.logFormat,
      level: config.logLevel,
      secrets,
      write: (line) => writeLine(line),
    });
    ctx.useLogger(log, secrets);
    // A redrawn line on a terminal; the periodic `progress` log line otherwise (JSON logs included).
    const terminal = config.logFormat === "text" && Deno.stderr.isTerminal();
    const progress = createProgress({ write: writeStderr, terminal, log });
    writeLine = progress.wrapLogWrite(writeLine);
    const metrics = config.metricsPort === undefined ? undefined : createMetrics({
      // A retry waits up to the backoff cap: only a loop silent for much longer than that is wedged.
      stallMs: Math.max(300_000, 3 * config.maxBackoffMs),
    });
    let server;
    try {
      server = metrics && serveMetrics(metrics, { port: config.metricsPort! });
    } catch (err) {
      throw new ConfigError(
        "--metrics-port / MASQ_METRICS_PORT",
        `cannot listen on ${config.metricsPort}: ${errorMessage(err)}`,
      );
    }
    if (server) log.info("serving /metrics, /healthz and /readyz", { port: server.port });
    const onEvent = (e: PipelineEvent) => {
      metrics?.onEvent(e);
      progress.onEvent(e);
    };
    const stop = ctx.stopOnSignals(log);
    const opts: RunOptions = { log, stop, env: ctx.env, onEvent, ...(sealed ? { sealed } : {}) };
    if (sealed) {
      log.info("sealing originals to the privacy officer's public key", { key_id: sealed.officer.keyId });
    } else if (config.vaultKey) {
      log.warn(
        "PII_VAULT_KEY gives masq run the key that decrypts every original; make a key pair (masq vault-keygen), give run PII_VAULT_PUBLIC_KEY_FILE only, and convert the vault (masq vault-convert)",
      );
    }
    progress.start();
    let summary;
    try {
      summary = await runMasq(config, opts);
    } finally {
      // The progress line ends before the summary, so that stdout and stderr do not share a terminal line.
      progress.stop();
      await server?.close();
    }
    ctx.print(JSON.stringify(summary));
    return 0;
  },
};
