/**
 * What each sslmode costs per connection set-up (lib/sink/connection.ts): connectClient() (what a lifecycle
 * command does once) and poolConfig() (the one probe connection `masq run` makes before its pool), in ms, the
 * mean of 30 after 3 warm-ups. Without arguments it starts the TLS tests' throwaway clusters (one with
 * ssl=on and hostssl only, one with TLS off; tests/support/tls_cluster.ts, ports 56422-56423; needs root
 * or the postgres binaries, and openssl):
 *
 *   deno run --allow-all bench/micro/connect.ts
 *
 * or measures the `name=url` pairs it is given (the URLs' own sslmode and PGSSL* settings apply).
 */
import { connectClient, poolConfig, processEnv } from "../../lib/sink/connection.ts";
import { makeCertificates, startTlsCluster } from "../../tests/support/tls_cluster.ts";

async function measure(cases: [string, string][]) {
  for (const [name, url] of cases) {
    for (let i = 0; i < 3; i++) await (await connectClient(url, processEnv)).end();
    const n = 30;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await (await connectClient(url, processEnv)).end();
    const t1 = performance.now();
    for (let i = 0; i < n; i++) await poolConfig(url, processEnv);
    const t2 = performance.now();
    console.log(
      `${name}: connectClient ${((t1 - t0) / n).toFixed(1)} ms, poolConfig ${((t2 - t1) / n).toFixed(1)} ms`,
    );
  }
}

if (Deno.args.length > 0) {
  await measure(Deno.args.map((a) => [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]));
} else {
  const certs = await makeCertificates();
  const cleanups: (() => Promise<unknown>)[] = [() => certs.remove()];
  try {
    const tls = await startTlsCluster({ port: 56422, certs });
    cleanups.push(() => tls.destroy());
    const plain = await startTlsCluster({ port: 56423 });
    cleanups.push(() => plain.destroy());
    await measure([
      ["TLS off, disable", plain.url({ sslmode: "disable" })],
      ["TLS off, prefer (TLS refused, then plaintext)", plain.url()],
      ["hostssl, prefer", tls.url()],
      ["hostssl, require", tls.url({ sslmode: "require" })],
      ["hostssl, verify-full", tls.url({ sslmode: "verify-full", sslrootcert: certs.ca })],
      ["hostssl, allow (plaintext refused, then TLS)", tls.url({ sslmode: "allow" })],
    ]);
  } finally {
    for (const undo of cleanups.reverse()) await undo().catch(() => {});
  }
}
