/**
 * The permissions of a deno.json task as explicit flags. masq's tasks load the permission set `masq` of
 * deno.json (`-P=masq`: network, environment variables, system information, defined once) and give their
 * reads on the command line (`--allow-read=...,$HOME/.aws`: a permission set cannot name the user's home,
 * and a flag replaces the set's list of its kind rather than adding to it). The compiled binary, the bench
 * and the tests need the same permissions as flags: expandPermissionSet() writes them out.
 *
 * @module
 */

/** One permission set of deno.json: `true` (all) or a list, per kind. */
export type PermissionSet = Partial<
  Record<"net" | "env" | "sys" | "read" | "write" | "run", true | string[]>
>;

/**
 * A task's command line with its `-P=<name>` replaced by that set's permissions as `--allow-<kind>` flags,
 * except the kinds the command line gives itself (as Deno does: a flag replaces the set's list).
 * Throws for a set deno.json does not define.
 *
 * @example
 * ```ts
 * import { expandPermissionSet } from "./permissions.ts";
 * expandPermissionSet("deno run -q -P=masq --allow-read=data main.ts", {
 *   masq: { net: true, env: ["HOME", "PG*"], read: ["ignored"] },
 * });
 * // "deno run -q --allow-net --allow-env=HOME,PG* --allow-read=data main.ts"
 * ```
 */
export function expandPermissionSet(command: string, sets: Record<string, PermissionSet> = {}): string {
  const words = command.split(/\s+/).filter(Boolean);
  const given = new Set(words.flatMap((w) => /^--allow-([a-z]+)/.exec(w)?.[1] ?? []));
  return words.flatMap((word) => {
    const m = /^(?:-P|--permission-set)=(.+)$/.exec(word);
    if (!m) return [word];
    const set = sets[m[1]];
    if (set === undefined) throw new Error(`deno.json has no permission set ${JSON.stringify(m[1])}`);
    return Object.entries(set).filter(([kind]) => !given.has(kind)).map(([kind, value]) =>
      value === true ? `--allow-${kind}` : `--allow-${kind}=${(value as string[]).join(",")}`
    );
  }).join(" ");
}

/** A task of deno.json (`deno.json`'s parsed text) with its permission set written out as flags. */
export function expandedTask(
  config: { tasks: Record<string, unknown>; permissions?: unknown },
  task: string,
): string {
  const t = config.tasks[task];
  const command = typeof t === "string" ? t : String((t as { command?: unknown })?.command ?? "");
  return expandPermissionSet(command, (config.permissions ?? {}) as Record<string, PermissionSet>);
}
