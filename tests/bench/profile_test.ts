import { assertEquals } from "../support/assert.ts";
import { areaOf, type HeapNode, heapProfilePath, summarize, summarizeHeap } from "../../bench/profile.ts";

Deno.test("areaOf() names the package, the repository file or the runtime module of a frame", () => {
  const npm = "file:///root/.cache/deno/npm/registry.npmjs.org/";
  assertEquals(areaOf(`${npm}@smithy/core/3.41.0/dist-cjs/index.js`, "f"), "npm:@smithy/core");
  assertEquals(areaOf(`${npm}pg/8.23.1/lib/client.js`, "f"), "npm:pg");
  const nm =
    "file:///work/masq/node_modules/.deno/@smithy+core@3.41.0/node_modules/@smithy/core/dist-cjs/a.js";
  assertEquals(areaOf(nm, "f"), "npm:@smithy/core");
  assertEquals(
    areaOf("file:///work/masq/node_modules/.deno/pg@8.23.1/node_modules/pg/lib/client.js", "f"),
    "npm:pg",
  );
  assertEquals(areaOf("file:///work/masq/lib/transform/parse.ts", "parseBody"), "lib/transform/parse.ts");
  assertEquals(areaOf("ext:deno_node/internal/http.ts", "f"), "ext:deno_node");
  assertEquals(areaOf("node:buffer", "f"), "node:buffer");
  assertEquals(areaOf("", "(garbage collector)"), "(garbage collector)");
  assertEquals(areaOf("", "JSON.parse"), "(native)");
});

Deno.test("summarize() adds self time by function and area, leaving idle time out of the shares", () => {
  const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 9 });
  const profile = {
    nodes: [
      { id: 1, callFrame: frame("(idle)", "") },
      { id: 2, callFrame: frame("parseBody", "file:///r/lib/transform/parse.ts") },
      { id: 3, callFrame: frame("(garbage collector)", "") },
    ],
    samples: [1, 2, 2, 3, 1],
    timeDeltas: [0, 1000, 1000, 1000, 1000],
  };
  const s = summarize(profile);
  assertEquals(s.busyMs, 3);
  assertEquals(s.idleMs, 2);
  assertEquals(s.areas.map((a) => [a.name, a.share]), [["lib/transform/parse.ts", 0.667], [
    "(garbage collector)",
    0.333,
  ]]);
  assertEquals(s.functions[0].name, "parseBody lib/transform/parse.ts:10");
});

Deno.test("summarizeHeap() charges what the runtime allocates to its nearest caller in a package or in lib/", () => {
  const node = (
    functionName: string,
    url: string,
    selfSize: number,
    children: HeapNode[] = [],
  ): HeapNode => ({
    callFrame: { functionName, url, lineNumber: 4 },
    selfSize,
    children,
  });
  const sdk = "file:///r/node_modules/.deno/@smithy+core@3.41.0/node_modules/@smithy/core/dist-cjs/index.js";
  const s = summarizeHeap({
    head: node("(root)", "", 0, [
      node("textArray", "file:///r/lib/sink/postgres.ts", 100, [
        node("join", "", 300),
        node("fromObject", "ext:deno_node/internal/buffer.mjs", 50, [node("Uint8Array", "", 50)]),
      ]),
      node("read", sdk, 400, [node("(anonymous)", "file:///r/lib/pipeline.ts", 20)]),
      node("writev", "", 80),
    ]),
  });
  assertEquals(s.bytes, 1000);
  assertEquals(s.areas.map((a) => [a.name, a.bytes, a.share]), [
    ["lib/sink/postgres.ts", 500, 0.5],
    ["npm:@smithy/core", 400, 0.4],
    ["(native)", 80, 0.08],
    ["lib/pipeline.ts", 20, 0.02],
  ]);
  // By function, each frame keeps its own bytes.
  assertEquals(s.functions[0], { name: "read npm:@smithy/core:5", bytes: 400, share: 0.4 });
  assertEquals(s.functions.find((f) => f.name.startsWith("join"))?.bytes, 300);
});

Deno.test("heapProfilePath() puts the heap profile beside the CPU profile", () => {
  assertEquals(heapProfilePath("/tmp/p/masq.cpuprofile"), "/tmp/p/masq.heapprofile");
  assertEquals(heapProfilePath("out/profile"), "out/profile.heapprofile");
});
