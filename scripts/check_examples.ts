/**
 * Type-checks every `@example` in main.ts and lib/ (`deno check --doc-only`). Deno adds to each example an
 * import of every export of its module, which this project's `noUnusedLocals` then reports as unused
 * (denoland/deno#26900), so the examples are checked under a copy of deno.json with only the two
 * unused-name options off: every other error (an undefined name, a wrong type, a bad import) still fails.
 * The copy is written beside deno.json (so that it finds the same node_modules and lock file) and removed.
 *
 * Usage: deno run --allow-run=deno --allow-read=. --allow-write=.examples.deno.json scripts/check_examples.ts
 */
const root = new URL("../", import.meta.url);
const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
config.compilerOptions = { ...config.compilerOptions, noUnusedLocals: false, noUnusedParameters: false };
delete config.tasks;
const copy = new URL(".examples.deno.json", root);
await Deno.writeTextFile(copy, JSON.stringify(config, null, 2));
let ok = false;
try {
  const out = await new Deno.Command("deno", {
    args: ["check", "--doc-only", "--config", copy.pathname, "main.ts", "lib/"],
    cwd: root.pathname,
    stdout: "inherit",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stderr);
  const examples = new Set(text.match(/\S+#\d+-\d+\.ts/g) ?? []).size;
  if (out.code !== 0) console.error(text.split("\n").filter((l) => !/Check /.test(l)).join("\n"));
  console.error(
    `check_examples: ${examples} examples type-checked, ${out.code === 0 ? "no errors" : "FAILED"}`,
  );
  ok = out.code === 0;
} finally {
  await Deno.remove(copy).catch(() => {});
}
Deno.exit(ok ? 0 : 1);
