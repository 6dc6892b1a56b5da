import { compileArgs, flagValue, isRuntimeDownloadFailure } from "../../scripts/compile.ts";
import { assert, assertEquals, assertThrows } from "../support/assert.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<string, string>;

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

Deno.test("every masq task runs through the one permission list of the masq task", () => {
  for (const name of ["start", "demo"]) {
    assert(tasks[name].startsWith("deno task masq "), `${name}: ${tasks[name]}`);
  }
  // The bench (bench/main.ts) starts its emulator and consumers as processes of their own: the masq list
  // plus running deno.
  assertEquals(
    tasks.bench,
    tasks.masq.replace(/^deno run /, "deno run --allow-run=deno ").replace(/ main\.ts$/, " bench/main.ts"),
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
