/** The CLI's commands, by name. */
import type { Command } from "./command.ts";
import { ConfigError } from "../errors.ts";
import { demo } from "./demo.ts";
import { forget } from "./forget.ts";
import { migrate } from "./migrate.ts";
import { recover } from "./recover.ts";
import { redrive } from "./redrive.ts";
import { rekey } from "./rekey.ts";
import { run } from "./run.ts";
import { vaultConvert } from "./vault_convert.ts";
import { vaultKeygen } from "./vault_keygen.ts";

export type { Command, CommandContext } from "./command.ts";

/** `masq bench` only points at the benchmark, a program of its own (bench/main.ts) outside the binary. */
const bench: Command = {
  usage: "bench                    the benchmark is `deno task bench` (bench/), not part of masq",
  run() {
    throw new ConfigError(
      "bench",
      "the benchmark is `deno task bench` (see bench/main.ts), not part of masq",
    );
  },
};

export const COMMANDS: Readonly<Record<string, Command>> = {
  run,
  demo,
  bench,
  migrate,
  recover,
  forget,
  rekey,
  redrive,
  "vault-keygen": vaultKeygen,
  "vault-convert": vaultConvert,
};
