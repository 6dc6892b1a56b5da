import { type MessageAttributeValue } from "@aws-sdk/client-sqs";
import { assertEquals } from "../support/assert.ts";
import {
  classify,
  DEFAULT_MAX_MESSAGE_BYTES,
  entryFailure,
  isSqsMessageId,
  letterBytes,
  maxMessageBytes,
  messageKey,
  notJsonError,
  sdkMessage,
} from "../../lib/source/sqs.ts";
import { exitCodeFor } from "../../lib/errors.ts";
import { GOOD_MAC, LETTER_ID, sqsError, stringAttribute, verifyReplay } from "../support/fakes.ts";

Deno.test("classify() of the source: transient for outages, data for refused contents, fatal for bugs and the rest", () => {
  assertEquals(classify(sqsError("ServiceUnavailable", 503)), "transient");
  assertEquals(classify(sqsError("RequestThrottled", 400)), "transient");
  assertEquals(
    classify(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })),
    "transient",
  );
  assertEquals(classify(sqsError("InvalidMessageContents", 400)), "data");
  assertEquals(classify(sqsError("InvalidParameterValue", 400)), "data");
  assertEquals(classify(sqsError("AccessDenied", 403)), "fatal");
  assertEquals(classify(sqsError("QueueDoesNotExist", 400)), "fatal");
  assertEquals(classify(Object.assign(new Error("aborted"), { name: "AbortError" })), "fatal");
  // A bug is never retried, not even one the SDK threw without an HTTP status.
  assertEquals(classify(new TypeError("Cannot read properties of undefined")), "fatal");
  assertEquals(classify(new RangeError("Invalid array length")), "fatal");
  assertEquals(classify("503"), "fatal");
});

Deno.test("letterBytes() counts the body and each attribute's name, type and value in UTF-8", () => {
  assertEquals(letterBytes({ messageId: "m", body: "é", attributes: { ab: "xyz" } }), 2 + 2 + 6 + 3);
});

Deno.test("maxMessageBytes() reads a queue's MaximumMessageSize, 262,144 when it says nothing usable", () => {
  assertEquals(maxMessageBytes("1048576"), 1_048_576);
  assertEquals(maxMessageBytes("2048"), 2048);
  assertEquals(DEFAULT_MAX_MESSAGE_BYTES, 262_144);
  for (const odd of [undefined, "", "abc", "1e6", "-5", "12", "1048576.5", " 1048576"]) {
    assertEquals(maxMessageBytes(odd), DEFAULT_MAX_MESSAGE_BYTES, String(odd));
  }
});

Deno.test("entryFailure() treats a batch entry as a single send's answer: refused contents, fatal sender faults, transient queue faults", () => {
  assertEquals(entryFailure("InvalidMessageContents", "Invalid characters found.", true), {
    status: "refused",
    why: "refused by the dead-letter queue (InvalidMessageContents)",
  });
  const denied = entryFailure("AccessDenied", "no", true);
  assertEquals(denied.status, "failed");
  if (denied.status === "failed") assertEquals(classify(denied.error), "fatal");
  const internal = entryFailure("InternalError", "try again", false);
  assertEquals(internal.status, "failed");
  if (internal.status === "failed") assertEquals(classify(internal.error), "transient");
});

Deno.test("messageKey() keys a replay by its dead letter's id only when its MAC verifies, anything else by its SQS message id", () => {
  assertEquals(messageKey("m-2", undefined, verifyReplay), { id: "m-2", ignored: false });
  assertEquals(messageKey("m-2", {}, verifyReplay), { id: "m-2", ignored: false });
  assertEquals(
    messageKey("m-2", {
      masq_redrive_id: stringAttribute(LETTER_ID),
      masq_redrive_mac: stringAttribute(GOOD_MAC),
    }, verifyReplay),
    { id: `redrive:${LETTER_ID}`, ignored: false },
  );
  // A producer's own attributes: no MAC, a wrong one, a MAC without an id, a value not shaped like an SQS
  // message id (even with a MAC the verifier would take), another data type, no verifier at all.
  const forged: Record<string, MessageAttributeValue>[] = [
    { masq_redrive_id: stringAttribute("collide-1") },
    { masq_redrive_id: stringAttribute(LETTER_ID) },
    { masq_redrive_id: stringAttribute(LETTER_ID), masq_redrive_mac: stringAttribute("b".repeat(64)) },
    {
      masq_redrive_id: stringAttribute(LETTER_ID),
      masq_redrive_mac: stringAttribute(GOOD_MAC.toUpperCase()),
    },
    { masq_redrive_mac: stringAttribute(GOOD_MAC) },
    { masq_redrive_id: stringAttribute(`${LETTER_ID} `), masq_redrive_mac: stringAttribute(GOOD_MAC) },
    { masq_redrive_id: { DataType: "Binary", BinaryValue: new TextEncoder().encode(LETTER_ID) } },
    {
      masq_redrive_id: { DataType: "Number", StringValue: "1" },
      masq_redrive_mac: stringAttribute(GOOD_MAC),
    },
  ];
  for (const attributes of forged) {
    assertEquals(
      messageKey("m-2", attributes, verifyReplay),
      { id: "m-2", ignored: true },
      JSON.stringify(attributes),
    );
  }
  assertEquals(
    messageKey("m-2", {
      masq_redrive_id: stringAttribute(LETTER_ID),
      masq_redrive_mac: stringAttribute(GOOD_MAC),
    }, undefined),
    { id: "m-2", ignored: true },
  );
  // The verifier is asked only about a well-shaped id and MAC.
  const asked: string[] = [];
  messageKey("m-2", {
    masq_redrive_id: stringAttribute("x".repeat(10_000)),
    masq_redrive_mac: stringAttribute(GOOD_MAC),
  }, (id) => {
    asked.push(id);
    return true;
  });
  assertEquals(asked, []);
});

Deno.test("isSqsMessageId() takes the UUIDs SQS makes, nothing else", () => {
  assertEquals(isSqsMessageId(LETTER_ID), true);
  assertEquals(isSqsMessageId(LETTER_ID.toUpperCase()), true);
  for (
    const odd of ["", "collide-1", "593-47-5928", `${LETTER_ID}x`, `redrive:${LETTER_ID}`, "z".repeat(36)]
  ) {
    assertEquals(isSqsMessageId(odd), false, odd);
  }
});

Deno.test("notJsonError() of an XML answer to a JSON request is one line naming --sqs-protocol, query and auto, without the SDK's $response advice", () => {
  // The SDK's error for a JSON request that a query-only server (LocalStack before 3.0) answered in XML.
  const err = Object.assign(
    new SyntaxError(
      `Unexpected token '<', "<?xml vers"... is not valid JSON\n  Deserialization error: to see the raw response, inspect the hidden field {error}.$response on this object.`,
    ),
    { $metadata: { httpStatusCode: 200 } },
  );
  const e = notJsonError(err);
  assertEquals(
    e.message,
    "--sqs-protocol / MASQ_SQS_PROTOCOL: json was asked for, but the SQS endpoint answered in the query (XML) protocol; use --sqs-protocol query, or auto to choose by the endpoint's answer",
  );
  assertEquals(sdkMessage(err), `Unexpected token '<', "<?xml vers"... is not valid JSON`);
  assertEquals(exitCodeFor(e), 2);
});
