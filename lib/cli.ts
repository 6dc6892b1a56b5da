/**
 * The command line: parsing argv strictly for the command it names, and the text of `masq --help`, both
 * from the settings table (lib/config.ts) so that neither can drift from it.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { SETTINGS } from "./config.ts";
import { ConfigError } from "./errors.ts";

export interface Invocation {
  command: string;
  help: boolean;
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** What parseCommandLine() needs to know of a command: its own flags, and whether it takes the settings. */
export interface CommandFlags {
  flags?: Record<string, { type: "string" | "boolean" }>;
  settings?: boolean;
}

/**
 * Parses argv strictly for the command it names: the settings flags (when the command takes them), the
 * command's own flags and --help. An unknown flag is a ConfigError (exit 2).
 *
 * @example
 * ```ts
 * import { parseCommandLine } from "./cli.ts";
 * const inv = parseCommandLine(["run", "--follow"], { run: { settings: true, flags: { follow: { type: "boolean" } } } });
 * inv.command; // "run"
 * ```
 */
export function parseCommandLine(
  args: readonly string[],
  commands: Readonly<Record<string, CommandFlags>> = {},
): Invocation {
  type Options = Record<string, { type: "string" | "boolean"; short?: string }>;
  const settingsFlags: Options = {};
  for (const s of SETTINGS) if (s.flag) settingsFlags[s.flag] = { type: "string" };
  const parse = (options: Options) => {
    try {
      return parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
    } catch (err) {
      const msg = (err as Error).message.split("\n")[0].replace(/\. To specify.*$/, "");
      throw new ConfigError("usage", `${msg} (see masq --help)`);
    }
  };
  // First find the command with every flag any command knows (so a flag's value is not taken for the
  // command), then parse again with only what that command accepts.
  const every: Options = { help: { type: "boolean", short: "h" }, ...settingsFlags };
  for (const c of Object.values(commands)) Object.assign(every, c.flags ?? {});
  const [command = ""] = parse(every).positionals;
  const spec = commands[command];
  const parsed = spec === undefined ? parse(every) : parse({
    help: { type: "boolean", short: "h" },
    ...(spec.settings ? settingsFlags : {}),
    ...spec.flags,
  });
  const [, ...positionals] = parsed.positionals;
  return { command, help: parsed.values.help === true, values: parsed.values, positionals };
}

/** The text of `masq --help`, generated from the defaults table so it cannot drift. */
export function helpText(commandUsages: readonly string[] = []): string {
  const rows = SETTINGS.map((s) => {
    const flag = s.flag ? `--${s.flag}` : "";
    return `  ${flag.padEnd(22)} ${s.env.join(", ").padEnd(38)} ${s.help}\n  ${
      "".padEnd(61)
    } default: ${s.defaultHelp}`;
  });
  return `masq: mask PII in SQS login events and write them to PostgreSQL

Usage:
${commandUsages.map((u) => `  masq ${u}`).join("\n")}
  masq --help                   this text

Settings (flag, else environment variable, else default):
  ${"flag".padEnd(22)} ${"environment".padEnd(38)} meaning
${rows.join("\n")}
  --follow                                                      keep long-polling forever (service mode)
  ${"".padEnd(22)} ${
    "PII_HMAC_KEY or PII_HMAC_KEY_FILE".padEnd(38)
  } the masking key (required, at least 32 bytes,
  ${"".padEnd(61)} not a public one; never a flag)
  ${"".padEnd(22)} ${
    "PII_VAULT_KEY or PII_VAULT_KEY_FILE".padEnd(38)
  } optional: 32 random bytes, base64; keeps
  ${"".padEnd(61)} originals only AES-256-GCM encrypted
  ${"".padEnd(22)} ${"PII_VAULT_KEY_ID".padEnd(38)} names the vault key (default v1)

AWS credentials come from the SDK's default chain; against a local endpoint with none set, dummy ones are
used. Secrets are never accepted as flags and never printed.

Exit codes: 0 done, 2 bad usage or configuration, 1 fatal runtime error.
The last line on stdout of run and demo is a JSON summary.`;
}
