import { compileArgs, flagValue, isRuntimeDownloadFailure } from "../../scripts/compile.ts";
import { expandedTask, expandPermissionSet } from "../../scripts/permissions.ts";
import { assert, assertEquals, assertThrows } from "../support/assert.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
const raw = config.tasks as Record<string, string>;
/** The tasks with their permission set written out, as the binary, the bench and the tests use them. */
const tasks = Object.fromEntries(Object.keys(raw).map((t) => [t, expandedTask(config, t)]));

Deno.test("compileArgs() bakes the masq task's permissions, with only absolute reads and the home's .aws", () => {
  const args = compileArgs(tasks.masq, "/home/nonroot/");
  const value = (flag: string) => args.find((a) => a.startsWith(`--${flag}=`))?.slice(flag.length + 3);
  assertEquals(value("allow-env"), flagValue(tasks.masq, "allow-env"));
  assertEquals(value("allow-sys"), flagValue(tasks.masq, "allow-sys"));
  const reads = value("allow-read")!.split(",");
  assert(reads.includes("/run/secrets") && reads.includes("/home/nonroot/.aws"), reads.join(","));
  assert(reads.every((r) => r.startsWith("/")), `relative read in ${reads.join(",")}`);
  assert(!reads.some((r) => r.includes("$HOME") || r.includes("node_modules")), reads.join(","));
  assert(args.includes("--no-prompt") && args.includes("--allow-net"), args.join(" "));
  assert(
    !args.some((a) => a === "-A" || a === "--allow-all" || a.startsWith("--allow-write")),
    args.join(" "),
  );
  assertEquals(args.at(-1), "main.ts");
});

Deno.test("every masq task runs deno directly with the one permission set and the one read list", () => {
  // No task nests another (`deno task masq ...` would be one more process, forwarding signals, printing
  // its own line); each is the masq task's command line with a subcommand.
  for (const name of ["start", "demo"]) {
    assertEquals(raw[name], `${raw.masq} ${name === "start" ? "run" : "demo"}`, name);
  }
  assert(raw.masq.includes(" -P=masq ") && raw.masq.includes(" -q "), raw.masq);
  // The bench (bench/main.ts) starts its emulator and consumers as processes of their own: the masq
  // permissions plus running deno.
  assertEquals(
    raw.bench,
    raw.masq.replace(/ -P=masq /, " -P=masq --allow-run=deno ").replace(/ main\.ts$/, " bench/main.ts"),
  );
  assert(!tasks.masq.includes(" -A") && !tasks.masq.includes("--allow-all"), tasks.masq);
  assert(!tasks.masq.includes(".cache/deno"), "no Deno cache path: npm packages live in ./node_modules");
});

Deno.test("compileArgs() without a home drops $HOME paths; flagValue() refuses a task without the flag", () => {
  const reads = compileArgs(tasks.masq, undefined).find((a) => a.startsWith("--allow-read="))!;
  assert(!reads.includes(".aws"), reads);
  assertThrows(() => flagValue("deno run main.ts", "allow-env"), Error, "has no --allow-env=");
});

Deno.test("isRuntimeDownloadFailure() tells an offline denort download from other failures", () => {
  assert(isRuntimeDownloadFailure(
    "error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip): dns error",
  ));
  assert(
    !isRuntimeDownloadFailure("error sending request for url (https://registry.npmjs.org/pg): dns error"),
  );
});

Deno.test("expandPermissionSet() writes a set out as flags, leaving the kinds the command line gives", () => {
  assertEquals(
    expandPermissionSet("deno run -q -P=masq --allow-read=data main.ts run", {
      masq: { net: true, env: ["HOME", "PG*"], sys: ["osRelease"], read: ["replaced"] },
    }),
    "deno run -q --allow-net --allow-env=HOME,PG* --allow-sys=osRelease --allow-read=data main.ts run",
  );
  assertThrows(
    () => expandPermissionSet("deno run -P=other main.ts", {}),
    Error,
    'no permission set "other"',
  );
  assertEquals(expandPermissionSet("deno run main.ts"), "deno run main.ts");
});
