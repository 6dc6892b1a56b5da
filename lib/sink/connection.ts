/**
 * The one way masq connects to PostgreSQL: DATABASE_URL plus libpq's TLS settings (URL parameters
 * `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `sslpassword`, `ssl_min_protocol_version`, else the
 * variables PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, else libpq's defaults under ~/.postgresql),
 * with libpq's meanings, turned into node-postgres's client configuration. node-postgres would treat
 * prefer, require and verify-ca as verify-full and read certificate files itself; here masq reads them
 * (so a missing or forbidden file is one ConfigError line, exit 2) and hands pg their contents, never a
 * path, and never an `sslmode` (so the driver prints no SECURITY WARNING). See docs/tls.md.
 *
 * @module
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { type ConnectionOptions, createSecureContext } from "node:tls";
import pg from "pg";
import type { Env } from "../config.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import { redactUrl } from "../secrets.ts";
import { connectionAdvice } from "./postgres.ts";

/** libpq's sslmode values, weakest first. */
export const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;
export type SslMode = typeof SSL_MODES[number];

/** Where certificate files may live: the masq task's --allow-read (deno.json), as the errors say it. */
export const CERT_DIRS = "/etc/masq, /run/secrets, ~/.postgresql, or data/ or secrets/ in masq's directory";

const URL_SETTING = "--database-url / DATABASE_URL";

/** The URL parameters this module takes out of the URL (pg never sees them). */
const TLS_PARAMS = new Set([
  "sslmode",
  "sslrootcert",
  "sslcert",
  "sslkey",
  "sslpassword",
  "ssl_min_protocol_version",
  "sslnegotiation",
]);

/** libpq's TLS parameters masq does not implement: refused by name rather than silently ignored. */
const UNSUPPORTED_PARAMS: Record<string, string> = {
  sslcrl: "certificate revocation lists are not supported",
  sslcrldir: "certificate revocation lists are not supported",
  sslcertmode: "is not supported; give sslcert and sslkey to send a client certificate",
  sslsni: "is not supported (masq always sends the host name, as libpq's default sslsni=1 does)",
  ssl_max_protocol_version: "is not supported",
  requiressl: "is obsolete in libpq; use sslmode=require",
  ssl:
    "is node-postgres's, not libpq's; use sslmode (verify-full, verify-ca, require, prefer, allow, disable)",
  uselibpqcompat: "is node-postgres's; masq always gives sslmode its libpq meaning",
  sslcompression: "is not supported (and ignored by PostgreSQL 14 and later)",
};

/** A value and the setting it came from, for error lines. */
interface Sourced {
  value: string;
  setting: string;
}

/** A certificate file read at start-up. */
export interface CertFile {
  path: string;
  setting: string;
  pem: string;
}

/** DATABASE_URL resolved: the address, the TLS mode and the certificate files' contents. */
export interface DatabaseTarget {
  /** The URL as given (shown only through redactUrl). */
  url: string;
  host: string;
  port: number;
  mode: SslMode;
  /** Where the mode came from (`sslmode (in --database-url / DATABASE_URL)`, `PGSSLMODE`, or the default). */
  modeSetting: string;
  /** The root certificates the server's chain must lead to; "system" for the system's trusted roots. */
  rootCert?: CertFile | "system";
  clientCert?: CertFile;
  clientKey?: CertFile;
  /** The URL without the TLS parameters, for pg. */
  connectionString: string;
  /** pg's `ssl` for a TLS attempt (undefined for disable); verification as the mode says. */
  tls?: ConnectionOptions;
}

/** Reads a file as text (Deno.readTextFileSync); tests substitute their own. */
export type ReadText = (path: string) => string;

function isUnixSocket(host: string): boolean {
  return host.startsWith("/");
}

function defaultDir(env: Env): string | undefined {
  const home = env("HOME");
  return home ? `${home.replace(/\/+$/, "")}/.postgresql` : undefined;
}

/** Whether a default file (libpq's ~/.postgresql/...) is there; unreadable or forbidden counts as absent. */
function present(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Reads a certificate or key file, mapping every failure to one line naming the setting. */
function readCertFile(path: string, setting: string, readText: ReadText, what: string): CertFile {
  let pem: string;
  try {
    pem = readText(path);
  } catch (err) {
    const name = (err as { name?: string })?.name;
    if (err instanceof Deno.errors.NotFound || name === "NotFound") {
      throw new ConfigError(setting, `${what} file ${path} does not exist`);
    }
    if (err instanceof Deno.errors.NotCapable || name === "NotCapable") {
      throw new ConfigError(
        setting,
        `masq may not read ${path}: certificate files must be under ${CERT_DIRS} (see docs/tls.md)`,
      );
    }
    if (err instanceof Deno.errors.PermissionDenied || name === "PermissionDenied") {
      throw new ConfigError(setting, `cannot read ${what} file ${path}: permission denied for this user`);
    }
    if (err instanceof Deno.errors.IsADirectory || name === "IsADirectory") {
      throw new ConfigError(setting, `${path} is a directory, not a ${what} file`);
    }
    throw new ConfigError(setting, `cannot read ${what} file ${path}: ${errorMessage(err)}`);
  }
  return { path, setting, pem };
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates in a PEM file, parsed; a ConfigError when there are none or one is malformed. */
function parseCertificates(file: CertFile, what: string): X509Certificate[] {
  const blocks = file.pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) {
    throw new ConfigError(
      file.setting,
      `${file.path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); expected the ${what} in PEM form`,
    );
  }
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch {
      throw new ConfigError(
        file.setting,
        `certificate ${i + 1} in ${file.path} is not a valid PEM certificate`,
      );
    }
  });
}

/** The Common Name of an X.509 subject or issuer ("CN=x\nO=y"), else the whole of it on one line. */
function commonName(dn: string): string {
  const cn = dn.split("\n").find((l) => l.startsWith("CN="));
  return cn ? cn.slice(3) : dn.replaceAll("\n", ", ");
}

/**
 * Resolves DATABASE_URL and the libpq TLS settings (URL parameter > environment variable > libpq's
 * default), reads the certificate files and checks they are PEM. Every problem is a ConfigError naming
 * its setting.
 *
 * @example
 * ```ts
 * import { resolveTarget } from "./connection.ts";
 * const t = resolveTarget("postgres://app@db.internal/logins?sslmode=require", () => undefined);
 * t.mode; // "require"
 * t.tls; // { rejectUnauthorized: false, ... }: TLS, the certificate not checked (no root cert given)
 * ```
 */
export function resolveTarget(
  url: string,
  env: Env,
  readText: ReadText = Deno.readTextFileSync,
): DatabaseTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(
      URL_SETTING,
      "is not a URL; expected postgres://user[:password]@host[:port]/database",
    );
  }
  const param = (name: string): Sourced | undefined => {
    const v = u.searchParams.get(name);
    return v === null ? undefined : { value: v, setting: `${name} (in ${URL_SETTING})` };
  };
  const fromEnv = (name: string): Sourced | undefined => {
    const v = env(name);
    return v === undefined || v === "" ? undefined : { value: v, setting: name };
  };
  for (const key of u.searchParams.keys()) {
    const problem = UNSUPPORTED_PARAMS[key.toLowerCase()];
    if (problem) throw new ConfigError(`${key} (in ${URL_SETTING})`, problem);
  }

  const modeSource = param("sslmode") ?? fromEnv("PGSSLMODE") ??
    { value: "prefer", setting: "sslmode (libpq's default, prefer)" };
  if (!(SSL_MODES as readonly string[]).includes(modeSource.value)) {
    throw new ConfigError(
      modeSource.setting,
      `${JSON.stringify(modeSource.value.slice(0, 32))} is not one of ${SSL_MODES.join(", ")}`,
    );
  }
  let mode = modeSource.value as SslMode;
  const negotiation = param("sslnegotiation") ?? fromEnv("PGSSLNEGOTIATION");
  if (negotiation && negotiation.value !== "postgres") {
    throw new ConfigError(
      negotiation.setting,
      `${
        JSON.stringify(negotiation.value.slice(0, 32))
      } is not supported; only postgres (the SSLRequest handshake)`,
    );
  }
  const minVersion = param("ssl_min_protocol_version") ?? fromEnv("PGSSLMINPROTOCOLVERSION");
  const versions: Record<string, ConnectionOptions["minVersion"]> = {
    "TLSv1": "TLSv1",
    "TLSv1.1": "TLSv1.1",
    "TLSv1.2": "TLSv1.2",
    "TLSv1.3": "TLSv1.3",
  };
  if (minVersion && !(minVersion.value in versions)) {
    throw new ConfigError(
      minVersion.setting,
      `${JSON.stringify(minVersion.value.slice(0, 16))} is not one of ${Object.keys(versions).join(", ")}`,
    );
  }

  // As pg resolves them: the URL's, else PGHOST / PGPORT, else localhost:5432.
  const host = decodeURIComponent(u.searchParams.get("host") ?? u.hostname).replace(/^\[(.+)\]$/, "$1") ||
    env("PGHOST") || "localhost";
  const port = Number(u.searchParams.get("port") ?? (u.port || env("PGPORT") || 5432));
  // libpq does not use TLS over a Unix socket, whatever sslmode says.
  if (isUnixSocket(host)) mode = "disable";

  const stripped = new URL(url);
  for (const key of [...stripped.searchParams.keys()]) {
    if (TLS_PARAMS.has(key)) stripped.searchParams.delete(key);
  }
  const target: DatabaseTarget = {
    url,
    host,
    port,
    mode,
    modeSetting: modeSource.setting,
    connectionString: stripped.toString(),
  };
  if (mode === "disable") return target;

  const dir = defaultDir(env);
  const verify = mode === "verify-ca" || mode === "verify-full";
  // Root certificate: the named file (or "system"), else ~/.postgresql/root.crt when it exists.
  const root = param("sslrootcert") ?? fromEnv("PGSSLROOTCERT");
  if (root?.value === "system") {
    target.rootCert = "system";
  } else if (root) {
    target.rootCert = readCertFile(root.value, root.setting, readText, "root certificate");
  } else if (dir && present(`${dir}/root.crt`)) {
    target.rootCert = readCertFile(
      `${dir}/root.crt`,
      "~/.postgresql/root.crt (libpq's default sslrootcert)",
      readText,
      "root certificate",
    );
  } else if (verify) {
    throw new ConfigError(
      modeSource.setting,
      `sslmode=${mode} checks the server's certificate but no root certificate is given: set sslrootcert=<CA file> in the URL or PGSSLROOTCERT (or sslrootcert=system for the system's trusted roots); ${
        dir ? `${dir}/root.crt` : "~/.postgresql/root.crt"
      } does not exist`,
    );
  }
  let ca: string | undefined;
  if (target.rootCert && target.rootCert !== "system") {
    parseCertificates(target.rootCert, "CA certificate(s)");
    ca = target.rootCert.pem;
  }

  // Client certificate: sslcert + sslkey, else libpq's ~/.postgresql/postgresql.{crt,key} when present.
  const passphrase = param("sslpassword")?.value;
  const certSrc = param("sslcert") ?? fromEnv("PGSSLCERT");
  const keySrc = param("sslkey") ?? fromEnv("PGSSLKEY");
  if (certSrc) {
    target.clientCert = readCertFile(certSrc.value, certSrc.setting, readText, "client certificate");
  } else if (dir && present(`${dir}/postgresql.crt`)) {
    target.clientCert = readCertFile(
      `${dir}/postgresql.crt`,
      "~/.postgresql/postgresql.crt (libpq's default sslcert)",
      readText,
      "client certificate",
    );
  }
  if (target.clientCert) {
    if (keySrc) {
      target.clientKey = readCertFile(keySrc.value, keySrc.setting, readText, "client key");
    } else if (dir && present(`${dir}/postgresql.key`)) {
      target.clientKey = readCertFile(
        `${dir}/postgresql.key`,
        "~/.postgresql/postgresql.key (libpq's default sslkey)",
        readText,
        "client key",
      );
    } else {
      throw new ConfigError(
        target.clientCert.setting,
        "a client certificate needs its private key: set sslkey=<file> in the URL or PGSSLKEY",
      );
    }
    const [leaf] = parseCertificates(target.clientCert, "client certificate");
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(target.clientKey.pem)) {
      throw new ConfigError(
        target.clientKey.setting,
        "the client key file holds no PEM private key (-----BEGIN PRIVATE KEY-----)",
      );
    }
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: target.clientKey.pem, passphrase });
    } catch (err) {
      throw new ConfigError(
        target.clientKey.setting,
        `cannot load the client key (encrypted? give sslpassword in the URL): ${errorMessage(err)}`,
      );
    }
    if (!leaf.checkPrivateKey(key)) {
      throw new ConfigError(
        target.clientKey.setting,
        "the client key does not belong to the client certificate",
      );
    }
  } else if (keySrc) {
    throw new ConfigError(
      keySrc.setting,
      "a client key without a client certificate: set sslcert=<file> too",
    );
  }

  // What pg gets: contents, never paths. libpq: a root certificate makes every mode check the chain;
  // only verify-full checks the host name. allow/prefer never refuse a certificate (they would fall
  // back to plaintext anyway).
  const checkChain = verify || (mode === "require" && target.rootCert !== undefined);
  const options: ConnectionOptions = {
    rejectUnauthorized: checkChain,
    ...(checkChain && ca !== undefined ? { ca } : {}),
    ...(mode === "verify-full" ? {} : { checkServerIdentity: () => undefined }),
    ...(target.clientCert && target.clientKey
      ? { cert: target.clientCert.pem, key: target.clientKey.pem }
      : {}),
    ...(passphrase !== undefined ? { passphrase } : {}),
    ...(minVersion ? { minVersion: versions[minVersion.value] } : {}),
  };
  try {
    // Whatever else the TLS library refuses in these files fails here, at start-up, not at connect.
    createSecureContext(options);
  } catch (err) {
    const setting = target.clientKey?.setting ?? target.clientCert?.setting ?? URL_SETTING;
    throw new ConfigError(setting, `cannot use the TLS files: ${errorMessage(err)}`);
  }
  target.tls = options;
  return target;
}

/** One way to connect: TLS with these options, or plaintext (false). */
export type Attempt = false | ConnectionOptions;

/**
 * The connection attempts of a mode, in libpq's order: prefer tries TLS then plaintext, allow plaintext
 * then TLS; the others have one.
 */
export function attemptsOf(target: DatabaseTarget): Attempt[] {
  const tls = target.tls ?? false;
  switch (target.mode) {
    case "disable":
      return [false];
    case "allow":
      return [false, tls];
    case "prefer":
      return [tls, false];
    default:
      return [tls];
  }
}

/** The pg client configuration of one attempt (extra: application_name, timeouts, types...). */
export function clientConfig(
  target: DatabaseTarget,
  attempt: Attempt,
  extra: pg.ClientConfig = {},
): pg.ClientConfig {
  // A fresh object per client: pg hides `key` on the object it is given.
  return {
    ...extra,
    connectionString: target.connectionString,
    ssl: attempt === false ? false : { ...attempt },
    // pg reads PGSSLNEGOTIATION itself unless told; the SSLRequest handshake is the one masq supports.
    sslnegotiation: "postgres",
  } as pg.ClientConfig;
}

/** Whether an attempt's failure lets libpq try the mode's other way: the server refused TLS, or refused us. */
function retryable(err: unknown): boolean {
  const msg = errorMessage(err);
  const code = (err as { code?: unknown })?.code;
  return msg.includes("does not support SSL") ||
    (typeof code === "string" && /^(28|08)[0-9A-Z]{3}$/.test(code));
}

const TLS_CHAIN_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
]);

/** The server's certificate of a failed handshake, when the error carries it. */
function peerNames(err: unknown): { subject?: string; issuer?: string; sans?: string } {
  const cert = (err as {
    cert?: { subject?: Record<string, string>; issuer?: Record<string, string>; subjectaltname?: string };
  })?.cert;
  return {
    subject: cert?.subject?.CN,
    issuer: cert?.issuer?.CN,
    sans: cert?.subjectaltname,
  };
}

/**
 * One ConfigError line for a connection that failed: TLS failures say what is wrong and which setting
 * to change (no TLS on the server, a certificate from another CA or none trusted, a host name the
 * certificate does not name, an expired certificate); anything else is `cannot use <URL>: <error>`.
 *
 * @example
 * ```ts
 * import { connectionError, resolveTarget } from "./connection.ts";
 * const t = resolveTarget("postgres://app@db/x?sslmode=require", () => undefined);
 * connectionError(new Error("The server does not support SSL connections"), t).message;
 * // "sslmode (in --database-url / DATABASE_URL): sslmode=require, but the server at db:5432 does not support TLS ..."
 * ```
 */
export function connectionError(err: unknown, target: DatabaseTarget): ConfigError {
  if (err instanceof ConfigError) return err;
  const msg = errorMessage(err);
  const code = (err as { code?: unknown })?.code;
  const where = `${target.host}:${target.port}`;
  if (msg.includes("does not support SSL")) {
    return new ConfigError(
      target.modeSetting,
      `sslmode=${target.mode}, but the server at ${where} does not support TLS (ssl=off, or a pooler without TLS); turn TLS on there, or use sslmode=prefer or disable`,
    );
  }
  if (code === "28000" && /no encryption/.test(msg) && target.mode !== "prefer" && target.mode !== "allow") {
    return new ConfigError(
      target.modeSetting,
      `sslmode=${target.mode}, but the server at ${where} accepts only TLS connections (pg_hba.conf hostssl); use sslmode=verify-full with sslrootcert=<CA file> (see docs/tls.md)`,
    );
  }
  const root = target.rootCert;
  if (typeof code === "string" && TLS_CHAIN_CODES.has(code)) {
    const peer = peerNames(err);
    const issued = peer.issuer ? ` (issued by ${JSON.stringify(peer.issuer)})` : "";
    if (root && root !== "system") {
      let cas = "";
      try {
        cas = parseCertificates(root, "CA").map((c) => JSON.stringify(commonName(c.subject))).join(", ");
      } catch { /* checked at start-up */ }
      return new ConfigError(
        root.setting,
        `the server's certificate at ${where}${issued} is not signed by the CA in ${root.path} (${cas}): wrong CA file? (${code})`,
      );
    }
    return new ConfigError(
      target.modeSetting,
      `the server's certificate at ${where}${issued} is not signed by any of the system's trusted roots; give its CA with sslrootcert=<file> or PGSSLROOTCERT (${code})`,
    );
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    const peer = peerNames(err);
    return new ConfigError(
      target.modeSetting,
      `sslmode=verify-full: the server's certificate names ${
        peer.sans ?? peer.subject ?? "other hosts"
      }, not ${target.host}; connect by a name it holds, or use sslmode=verify-ca`,
    );
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return new ConfigError(
      target.modeSetting,
      `the server's certificate at ${where} is ${
        code === "CERT_HAS_EXPIRED" ? "expired" : "not yet valid"
      } (${code})`,
    );
  }
  return new ConfigError(URL_SETTING, `cannot use ${redactUrl(target.url)}: ${msg}${connectionAdvice(err)}`);
}

/**
 * Connects one client the mode's way (prefer: TLS, plaintext if the server refuses TLS or refuses the
 * TLS connection; allow: the reverse), returning it with the attempt that worked; a ConfigError line
 * when none does.
 */
export async function connectTarget(
  target: DatabaseTarget,
  extra: pg.ClientConfig = {},
): Promise<{ client: pg.Client; attempt: Attempt }> {
  const attempts = attemptsOf(target);
  let first: unknown;
  for (let i = 0; i < attempts.length; i++) {
    const client = new pg.Client(clientConfig(target, attempts[i], extra));
    client.on("error", () => {}); // a lost connection fails the pending query, which reports it
    try {
      await client.connect();
      return { client, attempt: attempts[i] };
    } catch (err) {
      // Not awaited: after a failed connect pg may never say it ended (and nothing else keeps Deno alive).
      client.end().catch(() => {});
      first ??= err;
      if (i + 1 < attempts.length && retryable(err)) continue;
      // allow/prefer: the second way's error says more (e.g. "no encryption" after TLS was refused).
      throw connectionError(i > 0 ? err : first, target);
    }
  }
  throw connectionError(first, target);
}

/**
 * Connects one client for a command: DATABASE_URL and the libpq TLS settings resolved (resolveTarget),
 * connected the mode's way (connectTarget); every failure a ConfigError line (exit 2).
 *
 * @example
 * ```ts
 * import { connectClient } from "./connection.ts";
 * const client = await connectClient("postgres://postgres@127.0.0.1:5432/test", (n) => Deno.env.get(n), {
 *   application_name: "masq migrate",
 * });
 * await client.end();
 * ```
 */
export async function connectClient(url: string, env: Env, extra: pg.ClientConfig = {}): Promise<pg.Client> {
  return (await connectTarget(resolveTarget(url, env), extra)).client;
}

/**
 * The configuration of a pool: resolves the target and connects once, the mode's way (so a TLS problem is
 * one ConfigError line before the pool exists, and allow/prefer learn which way the server takes); every
 * connection of the pool then goes that way.
 *
 * @example
 * ```ts
 * import pg from "pg";
 * import { poolConfig } from "./connection.ts";
 * const pool = new pg.Pool(await poolConfig("postgres://postgres@127.0.0.1:5432/test", (n) => Deno.env.get(n), { max: 4 }));
 * await pool.end();
 * ```
 */
export async function poolConfig(url: string, env: Env, extra: pg.PoolConfig = {}): Promise<pg.PoolConfig> {
  const target = resolveTarget(url, env);
  const probe = await connectTarget(target, {
    ...(extra.connectionTimeoutMillis ? { connectionTimeoutMillis: extra.connectionTimeoutMillis } : {}),
    ...(extra.application_name ? { application_name: extra.application_name } : {}),
  });
  await probe.client.end().catch(() => {});
  return clientConfig(target, probe.attempt, extra) as pg.PoolConfig;
}

/** The environment as Deno has it, a variable masq may not read counting as unset. */
export function processEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}
