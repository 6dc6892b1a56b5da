import { assertEquals } from "./support/assert.ts";
import { BatchError, ConfigError, errorMessage, exitCodeFor, VaultError } from "../lib/errors.ts";

Deno.test("exitCodeFor() is 2 for a ConfigError and 1 for every other error", () => {
  assertEquals(exitCodeFor(new ConfigError("--max", "is not a number")), 2);
  for (
    const err of [
      new BatchError("batch failed: x", ["m1"], new Error("x")),
      new VaultError("does not decrypt"),
      new TypeError("x is not a function"),
      new Error("connection reset"),
      "a string",
      undefined,
    ]
  ) assertEquals(exitCodeFor(err), 1, String(err));
});

Deno.test("errorMessage() is the message with a code it lacks, and the text of anything thrown", () => {
  assertEquals(errorMessage(new ConfigError("SQS_QUEUE_URL", "is not a URL")), "SQS_QUEUE_URL: is not a URL");
  assertEquals(
    errorMessage(Object.assign(new Error("connect refused"), { code: "ECONNREFUSED" })),
    "connect refused (ECONNREFUSED)",
  );
  assertEquals(errorMessage(Object.assign(new Error("write EPIPE"), { code: "EPIPE" })), "write EPIPE");
  assertEquals(errorMessage("plain"), "plain");
});
