/**
 * Rules about the repository itself that a reviewer would otherwise have to remember: tests start
 * subprocesses only through the harness (which gives each a time limit and kills and reaps it), and nothing
 * cites a document that is not in the repository.
 */
import { assertEquals } from "./support/assert.ts";

const ROOT = new URL("../", import.meta.url);

/** Repository-relative paths of the files under `dir` whose names end with one of `exts`. */
function filesUnder(dir: string, exts: string[]): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(new URL(rel, ROOT))) {
      const path = `${rel}${e.name}`;
      if (e.isDirectory && !["node_modules", "dist", ".git"].includes(e.name)) walk(`${path}/`);
      else if (e.isFile && exts.some((x) => e.name.endsWith(x))) out.push(path);
    }
  };
  try {
    walk(dir);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

const read = (path: string) => Deno.readTextFileSync(new URL(path, ROOT));

Deno.test("tests start subprocesses only through the harness's spawnWatched() (a time limit, kill and reap)", () => {
  // Built from parts so that this file does not match itself.
  const spawn = new RegExp(["new Deno", "\\.Command\\(|Deno\\.run\\("].join(""));
  const offenders = filesUnder("tests/", [".ts"])
    .filter((p) => p !== "tests/support/processes.ts" && spawn.test(read(p)));
  assertEquals(offenders, [], "use spawnWatched() / spawnMasq() from tests/support/processes.ts");
});

Deno.test("no code, test or document cites a specification outside the repository", () => {
  const cite = new RegExp(["\\bS", "PEC\\b"].join(""));
  const exts = [".ts", ".md", ".sql", ".yml", ".yaml", ".json", ".sh"];
  const files = [
    ...["main.ts", "README.md", "Dockerfile", "docker-compose.yml", "deno.json", ".ci/run"],
    ...["lib/", "tests/", "scripts/", "bench/", "sql/", "deploy/", ".ci/"].flatMap((d) =>
      filesUnder(d, exts)
    ),
  ];
  const offenders = files.filter((p) => {
    try {
      return cite.test(read(p));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
  });
  assertEquals(offenders, [], "cite the README (or nothing) instead");
});
