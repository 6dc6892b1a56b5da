import { assert, assertEquals, assertMatch, assertThrows } from "./support/assert.ts";
import { helpText, parseCommandLine } from "../lib/cli.ts";
import { ConfigError } from "../lib/errors.ts";

/** The ConfigError a build throws. */
function configError(fn: () => unknown): ConfigError {
  const err = assertThrows(fn, ConfigError);
  return err as ConfigError;
}

Deno.test("parseCommandLine() reads the command, flags and positionals", () => {
  const inv = parseCommandLine([
    "run",
    "--follow",
    "--queue-url",
    "http://h:1/0/q",
    "--concurrency=4",
    "extra",
  ], { run: { settings: true, flags: { follow: { type: "boolean" } } } });
  assertEquals(inv.command, "run");
  assertEquals(inv.help, false);
  assertEquals(inv.values.follow, true);
  assertEquals(inv.values["queue-url"], "http://h:1/0/q");
  assertEquals(inv.values.concurrency, "4");
  assertEquals(inv.positionals, ["extra"]);
  assertEquals(parseCommandLine(["-h"]).help, true);
  assertEquals(parseCommandLine([]).command, "");
  // A command's own flag is refused by another command.
  configError(() =>
    parseCommandLine(["demo", "--follow"], { run: { flags: { follow: { type: "boolean" } } }, demo: {} })
  );
});

Deno.test("parseCommandLine() rejects an unknown flag with a ConfigError", () => {
  const err = configError(() => parseCommandLine(["run", "--queue", "http://h/0/q"]));
  assertEquals(err.setting, "usage");
  assertMatch(err.message, /--queue/);
  assertMatch(err.message, /masq --help/);
  // Secrets are never flags.
  configError(() => parseCommandLine(["run", "--pii-hmac-key", "k"]));
  // A string flag without its value.
  configError(() => parseCommandLine(["run", "--queue-url"]));
});

Deno.test("helpText() lists each command it is given and every documented flag and variable", () => {
  const help = helpText([
    "run [--follow] [flags]   consume the queue",
    "forget --user-id ID   erase a person",
  ]);
  assert(help.includes("masq run [--follow] [flags]"), "command usage lines are listed");
  assert(help.includes("masq forget --user-id ID"), "command usage lines are listed");
  assert(!helpText([]).includes("masq run"), "no usage line that was not given");
  // Written out here, not derived from SETTINGS: dropping a setting or its variable from the help fails.
  for (
    const word of [
      "--queue-url",
      "SQS_QUEUE_URL",
      "--endpoint",
      "AWS_ENDPOINT_URL_SQS",
      "--region",
      "AWS_REGION",
      "--database-url",
      "DATABASE_URL",
      "--dlq-url",
      "SQS_DLQ_URL",
      "--sqs-protocol",
      "--concurrency",
      "--batch-size",
      "--wait-seconds",
      "--visibility-timeout",
      "--db-pool-size",
      "--max-backoff-ms",
      "--log-format",
      "--log-level",
      "--metrics-port",
      "--follow",
      "PII_HMAC_KEY or PII_HMAC_KEY_FILE",
      "PII_HMAC_KEY_ID",
      "PII_VAULT_KEY or PII_VAULT_KEY_FILE",
      "PII_VAULT_KEY_ID",
      "http://localhost:4566/000000000000/login-queue",
    ]
  ) assert(help.includes(word), word);
  assert(!help.includes(":postgres@"), "the default database password is redacted");
});
