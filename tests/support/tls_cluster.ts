/**
 * TLS test fixtures: certificates made with openssl (a CA, a server certificate for localhost and
 * 127.0.0.1, an unrelated second CA, a client certificate), and throwaway PostgreSQL clusters (initdb +
 * pg_ctl, as the postgres user when root) with `ssl=on` and `hostssl`-only pg_hba, or with TLS off.
 * Ports come from the caller (the TLS tests use 56420-56439). Everything is removed by `destroy()`, which
 * the tests call in `finally`.
 *
 * @module
 */
import { postgresBinDir } from "./databases.ts";
import { collect, ROOT, spawnWatched } from "./processes.ts";

/** The passphrase of TestCertificates.clientKeyEncrypted. */
export const CLIENT_KEY_PASSPHRASE = "tls-test-passphrase";

/** Paths of the files makeCertificates() wrote. */
export interface TestCertificates {
  /** The directory holding them (under the repository's secrets/, which masq may read). */
  dir: string;
  ca: string;
  /** A CA that signed nothing the server uses. */
  otherCa: string;
  serverCert: string;
  serverKey: string;
  /** A client certificate for the role `certuser`, signed by `ca`. */
  clientCert: string;
  clientKey: string;
  /** clientKey encrypted with the passphrase CLIENT_KEY_PASSPHRASE. */
  clientKeyEncrypted: string;
  /** A file that is not PEM. */
  notPem: string;
  /** A copy of `ca` in a temporary directory outside the paths masq may read. */
  outsideCa: string;
  remove(): Promise<void>;
}

/** Why the TLS tests cannot run here (they then fail with this line), or undefined. */
export function tlsToolsMissing(): string | undefined {
  if (postgresBinDir() === undefined) return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin";
  const onPath = (Deno.env.get("PATH") ?? "").split(":").some((d) => {
    try {
      return Deno.statSync(`${d}/openssl`).isFile;
    } catch {
      return false;
    }
  });
  return onPath ? undefined : "openssl is not installed (apt-get install openssl; .ci/run installs it)";
}

async function run(program: string, args: string[], cwd?: string): Promise<string> {
  const out = await collect(spawnWatched(program, args, { timeoutMs: 60_000, ...(cwd ? { cwd } : {}) }));
  if (out.code !== 0) throw new Error(`${program} ${args.join(" ")} failed (${out.code}): ${out.stderr}`);
  return out.stdout;
}

/**
 * Makes a CA, a server certificate (SAN DNS:localhost, IP:127.0.0.1) signed by it, a second unrelated
 * CA and a client certificate (CN=certuser), with openssl, in a fresh directory under secrets/ (one of the
 * paths `deno task masq` may read).
 */
export async function makeCertificates(): Promise<TestCertificates> {
  await Deno.mkdir(`${ROOT}secrets`, { recursive: true });
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  // What a killed earlier run left (its `finally` never ran), if older than ten minutes.
  for (const parent of [`${ROOT}secrets`, tmp]) {
    for (const e of Deno.readDirSync(parent)) {
      if (!e.isDirectory || !/^(tls-test-|masq-tls-outside-)/.test(e.name)) continue;
      const age = Date.now() - (Deno.statSync(`${parent}/${e.name}`).mtime?.getTime() ?? Date.now());
      if (age > 600_000) await Deno.remove(`${parent}/${e.name}`, { recursive: true }).catch(() => {});
    }
  }
  const dir = await Deno.makeTempDir({ dir: `${ROOT}secrets`, prefix: "tls-test-" });
  const outside = await Deno.makeTempDir({ dir: tmp, prefix: "masq-tls-outside-" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const ca = async (name: string, cn: string) =>
    await run("openssl", [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-subj",
      `/CN=${cn}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ], dir); // deno-fmt-ignore
  const leaf = async (name: string, cn: string, ext: string) => {
    await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
    await run("openssl", ["req", "-new", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`], dir);
    await run("openssl", [
      "x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`,
    ], dir); // deno-fmt-ignore
  };
  try {
    await ca("ca", "masq test CA");
    await ca("other-ca", "unrelated test CA");
    await leaf(
      "server",
      "localhost",
      "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    await leaf("client", "certuser", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
    await run("openssl", [
      "pkcs8",
      "-topk8",
      "-in",
      "client.key",
      "-out",
      "client-enc.key",
      "-passout",
      `pass:${CLIENT_KEY_PASSPHRASE}`,
    ], dir); // deno-fmt-ignore
    await Deno.writeTextFile(`${dir}/not-pem.pem`, "this is not a certificate\n");
    await Deno.copyFile(`${dir}/ca.pem`, `${outside}/ca.pem`);
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(outside, { recursive: true }).catch(() => {});
    throw err;
  }
  return {
    dir,
    ca: `${dir}/ca.pem`,
    otherCa: `${dir}/other-ca.pem`,
    serverCert: `${dir}/server.crt`,
    serverKey: `${dir}/server.key`,
    clientCert: `${dir}/client.crt`,
    clientKey: `${dir}/client.key`,
    clientKeyEncrypted: `${dir}/client-enc.key`,
    notPem: `${dir}/not-pem.pem`,
    outsideCa: `${outside}/ca.pem`,
    async remove() {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(outside, { recursive: true }).catch(() => {});
    },
  };
}

export interface TlsCluster {
  port: number;
  /** postgres://postgres@<host>:<port>/postgres with these query parameters. */
  url(params?: Record<string, string>, host?: string): string;
  /** Stops the server (if running) and removes its directory. */
  destroy(): Promise<void>;
}

async function postgresOwner(): Promise<{ uid: number; gid: number } | undefined> {
  if (Deno.uid() !== 0) return undefined;
  const uid = Number((await run("id", ["-u", "postgres"])).trim());
  const gid = Number((await run("id", ["-g", "postgres"])).trim());
  return { uid, gid };
}

/**
 * Stops and removes what a killed earlier run left on `port` (a SIGKILLed test runs no `finally`): a
 * masq-tls-pg-* cluster whose postmaster.pid names that port.
 */
async function removeStaleCluster(port: number, exec: (cmd: string, args: string[]) => Promise<string>) {
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  for (
    const e of [...Deno.readDirSync(tmp)].filter((e) => e.isDirectory && e.name.startsWith("masq-tls-pg-"))
  ) {
    const dir = `${tmp}/${e.name}`;
    let pid = "";
    try {
      pid = Deno.readTextFileSync(`${dir}/data/postmaster.pid`);
    } catch { /* not running */ }
    if (pid.split("\n")[3]?.trim() !== String(port)) continue;
    await exec(`${postgresBinDir()}/pg_ctl`, ["-D", `${dir}/data`, "-m", "immediate", "-w", "stop"]).catch(
      () => {},
    );
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * A throwaway cluster on 127.0.0.1 and 127.0.0.2 at `port`. With `certs`: ssl=on with the server
 * certificate, and pg_hba `hostssl` only (trust; the role `certuser` by client certificate); without:
 * ssl=off and plain `host` lines.
 */
export async function startTlsCluster(opts: { port: number; certs?: TestCertificates }): Promise<TlsCluster> {
  const bin = postgresBinDir();
  if (!bin) throw new Error("no PostgreSQL binaries (initdb, pg_ctl); set PG_BIN");
  const owner = await postgresOwner();
  const dir = await Deno.makeTempDir({ prefix: "masq-tls-pg-" });
  const data = `${dir}/data`;
  const exec = (cmd: string, args: string[]) =>
    owner ? run("runuser", ["-u", "postgres", "--", cmd, ...args], dir) : run(cmd, args, dir);
  await removeStaleCluster(opts.port, exec);
  let running = false;
  const destroy = async () => {
    if (running) {
      await exec(`${bin}/pg_ctl`, ["-D", data, "-m", "immediate", "-w", "-t", "60", "stop"]).catch(() => {});
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    if (owner) await Deno.chown(dir, owner.uid, owner.gid);
    await exec(`${bin}/initdb`, [
      "-D",
      data,
      "-U",
      "postgres",
      "-E",
      "UTF8",
      "--locale=C",
      "-N",
      "--auth=trust",
    ]);
    const conf: string[] = [
      `port = ${opts.port}`,
      "listen_addresses = '127.0.0.1,127.0.0.2'",
      `unix_socket_directories = '${dir}'`,
      "fsync = off",
      "max_connections = 30",
      "shared_buffers = 16MB",
    ];
    let hba = "local all all trust\n";
    if (opts.certs) {
      // The server's key must belong to the server's user and be private (PostgreSQL checks).
      for (const f of ["server.crt", "server.key", "ca.pem"]) {
        const from = f === "ca.pem"
          ? opts.certs.ca
          : f === "server.crt"
          ? opts.certs.serverCert
          : opts.certs.serverKey;
        await Deno.copyFile(from, `${data}/${f}`);
        await Deno.chmod(`${data}/${f}`, 0o600);
        if (owner) await Deno.chown(`${data}/${f}`, owner.uid, owner.gid);
      }
      conf.push(
        "ssl = on",
        "ssl_cert_file = 'server.crt'",
        "ssl_key_file = 'server.key'",
        "ssl_ca_file = 'ca.pem'",
      );
      hba += [
        "hostssl all certuser 127.0.0.0/8 cert",
        "hostssl all all 127.0.0.0/8 trust",
        "",
      ].join("\n");
    } else {
      conf.push("ssl = off");
      hba += "host all all 127.0.0.0/8 trust\n";
    }
    await Deno.writeTextFile(`${data}/postgresql.auto.conf`, conf.join("\n") + "\n", { append: true });
    await Deno.writeTextFile(`${data}/pg_hba.conf`, hba);
    await exec(`${bin}/pg_ctl`, ["-D", data, "-l", `${dir}/server.log`, "-w", "-t", "60", "start"]);
    running = true;
  } catch (err) {
    const log = await Deno.readTextFile(`${dir}/server.log`).catch(() => "");
    await destroy();
    throw new Error(`${(err as Error).message}\n${log}`);
  }
  return {
    port: opts.port,
    url(params = {}, host = "127.0.0.1") {
      const u = new URL(`postgres://postgres@${host}:${opts.port}/postgres`);
      for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
      return u.href;
    },
    destroy,
  };
}
