import { assertEquals, assertThrows } from "../support/assert.ts";
import { parseBenchArgs } from "../../bench/main.ts";
import { ConfigError } from "../../lib/errors.ts";

Deno.test("parseBenchArgs() reads the mode and the sizes of a run from its flags", () => {
  assertEquals(parseBenchArgs([]), { help: false, mode: "compare" });
  assertEquals(parseBenchArgs(["--messages", "2000", "--rounds", "1", "--processes", "2"]), {
    help: false,
    mode: "compare",
    messages: 2000,
    rounds: 1,
    processes: 2,
  });
  assertEquals(parseBenchArgs(["--memory"]).mode, "memory");
  assertEquals(parseBenchArgs(["--profile", "out"]), { help: false, mode: "profile", profileDir: "out" });
  assertEquals(parseBenchArgs(["--ablate", "sink,transform"]).ablate, ["sink", "transform"]);
  assertEquals(parseBenchArgs(["-h"]).help, true);
  assertEquals(parseBenchArgs(["--vault", "sealed"]).vault, "sealed");
});

Deno.test("parseBenchArgs() refuses, naming the flag, what the bench cannot do", () => {
  const refused = (args: string[], message: string) =>
    assertEquals(assertThrows(() => parseBenchArgs(args), ConfigError).message, message);
  refused(["--memory", "--profile", "d"], "--memory / --profile: choose one of the two modes");
  refused(["--profile", ""], "--profile: needs a directory to write the profiles to");
  refused(["--memory", "--ablate", "sink"], "--ablate: takes parts out of the compare rounds only");
  refused(["--ablate", "sink,sink"], '--ablate: "sink,sink" names a part twice');
  refused(["--rounds", "21"], '--rounds: "21" is not a whole number from 1 to 20');
  refused(["--processes", "0"], '--processes: "0" is not a whole number from 1 to 8');
  refused(["--vault", "aes"], "--vault: must be none, symmetric or sealed");
  refused(["--nope"], "usage: Unknown option '--nope' (see deno task bench --help)");
  refused(["junk"], 'usage: unexpected argument "junk" (see deno task bench --help)');
});
