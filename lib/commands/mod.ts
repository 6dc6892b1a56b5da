/** The CLI's commands, by name. */
import type { Command } from "./command.ts";
import { bench } from "./bench.ts";
import { demo } from "./demo.ts";
import { forget } from "./forget.ts";
import { migrate } from "./migrate.ts";
import { recover } from "./recover.ts";
import { redrive } from "./redrive.ts";
import { rekey } from "./rekey.ts";
import { run } from "./run.ts";

export type { Command, CommandContext } from "./command.ts";

export const COMMANDS: Readonly<Record<string, Command>> = {
  run,
  demo,
  bench,
  migrate,
  recover,
  forget,
  rekey,
  redrive,
};
