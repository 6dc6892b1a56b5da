import { parseAllDocuments } from "yaml";
import { METRIC_NAMES } from "../lib/metrics.ts";
import { SETTINGS } from "../lib/config.ts";
import { assert, assertEquals } from "./support/assert.ts";

const ROOT = new URL("../", import.meta.url).pathname;

// deno-lint-ignore no-explicit-any
type Manifest = Record<string, any>;

function manifests(): Manifest[] {
  const dir = `${ROOT}deploy/k8s`;
  const out: Manifest[] = [];
  for (const entry of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.name.endsWith(".yaml")) continue;
    for (const doc of parseAllDocuments(Deno.readTextFileSync(`${dir}/${entry.name}`))) {
      assertEquals(doc.errors.map((e) => e.message), [], entry.name);
      const m = doc.toJS() as Manifest | null;
      if (m) out.push({ ...m, __file: entry.name });
    }
  }
  return out;
}

function one(all: Manifest[], kind: string, name?: string): Manifest {
  const found = all.filter((m) => m.kind === kind && (name === undefined || m.metadata?.name === name));
  assertEquals(found.length, 1, `exactly one ${kind}${name ? ` ${name}` : ""}`);
  return found[0];
}

const ENV_NAMES = new Set([
  ...SETTINGS.flatMap((s) => s.env),
  "PII_HMAC_KEY_FILE",
  "PII_VAULT_KEY_FILE",
  "PII_VAULT_PUBLIC_KEY_FILE",
  "PII_VAULT_PRIVATE_KEY_FILE",
  "PGPASSWORD",
]);

Deno.test("deploy/k8s parses, and every manifest has apiVersion, kind and a masq-labelled name", () => {
  const all = manifests();
  assert(all.length >= 8, `${all.length} manifests`);
  for (const m of all) {
    assert(typeof m.apiVersion === "string" && typeof m.kind === "string", m.__file);
    assert(typeof m.metadata?.name === "string", `${m.__file}: metadata.name`);
    assertEquals(m.metadata.labels?.["app.kubernetes.io/name"], "masq", `${m.__file} ${m.metadata.name}`);
  }
});

Deno.test("deploy/k8s Deployment: selector matches the pod labels, probes hit the metrics port, secrets exist", () => {
  const all = manifests();
  const deployment = one(all, "Deployment", "masq");
  const config = one(all, "ConfigMap", "masq-config").data as Record<string, string>;
  const pod = deployment.spec.template;
  for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels)) {
    assertEquals(pod.metadata.labels[k], v, `selector label ${k}`);
  }
  const [container] = pod.spec.containers;
  assertEquals(container.args, ["run", "--follow"]);

  // Probes and scraping on the port masq serves its metrics on.
  const metricsPort = Number(config.MASQ_METRICS_PORT);
  const port = container.ports.find((p: Manifest) => p.name === "metrics");
  assertEquals(port.containerPort, metricsPort);
  assertEquals(container.livenessProbe.httpGet.path, "/healthz");
  assertEquals(container.readinessProbe.httpGet.path, "/readyz");
  for (const probe of [container.livenessProbe, container.readinessProbe]) {
    assert(probe.httpGet.port === "metrics" || probe.httpGet.port === metricsPort, "probe port");
  }
  assertEquals(pod.metadata.annotations["prometheus.io/port"], String(metricsPort));
  assertEquals(pod.metadata.annotations["prometheus.io/path"], "/metrics");

  // Every environment variable is one masq reads, and every setting in the ConfigMap is a real one.
  for (const name of Object.keys(config)) assert(ENV_NAMES.has(name), `ConfigMap ${name} is not a setting`);
  for (const e of container.env) assert(ENV_NAMES.has(e.name), `env ${e.name} is not read by masq`);
  assert(!("PII_HMAC_KEY" in config) && !/:[^@/]+@/.test(config.DATABASE_URL), "no secret in the ConfigMap");

  // Secrets referenced exist in the manifests, with the keys asked for.
  const secrets = new Map(all.filter((m) => m.kind === "Secret").map((s) => [s.metadata.name, s]));
  const refs: [string, string][] = [];
  const collect = (spec: Manifest) => {
    for (const c of spec.containers) {
      for (const e of c.env ?? []) {
        if (e.valueFrom?.secretKeyRef) {
          refs.push([e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key]);
        }
      }
    }
    for (const v of spec.volumes ?? []) {
      for (const item of v.secret?.items ?? []) refs.push([v.secret.secretName, item.key]);
    }
  };
  collect(pod.spec);
  collect(one(all, "Job", "masq-migrate").spec.template.spec);
  assert(refs.length >= 4, "secret references");
  for (const [name, key] of refs) {
    assert(secrets.has(name), `Secret ${name} is not in deploy/k8s`);
    assert(
      key in (secrets.get(name)!.stringData ?? secrets.get(name)!.data ?? {}),
      `Secret ${name} lacks ${key}`,
    );
  }

  // Key files are mounted where masq may read them, and the env names them there.
  const mount = container.volumeMounts.find((m: Manifest) => m.name === "keys");
  assert(mount.mountPath.startsWith("/run/secrets/") && mount.readOnly === true, "keys mounted read-only");
  const keyFile = container.env.find((e: Manifest) => e.name === "PII_HMAC_KEY_FILE").value;
  assert(keyFile.startsWith(mount.mountPath + "/"), "PII_HMAC_KEY_FILE is in the mounted secret");
});

Deno.test("deploy/k8s Deployment: grace covers the visibility timeout; non-root, read-only, with resources", () => {
  const all = manifests();
  const deployment = one(all, "Deployment", "masq");
  const config = one(all, "ConfigMap", "masq-config").data as Record<string, string>;
  const pod = deployment.spec.template.spec;
  const visibility = Number(config.MASQ_VISIBILITY_TIMEOUT);
  assert(visibility > 0, "MASQ_VISIBILITY_TIMEOUT set");
  assert(pod.terminationGracePeriodSeconds >= visibility + 10, "grace >= visibility timeout + margin");
  assertEquals(pod.securityContext.runAsNonRoot, true);
  assert(pod.securityContext.runAsUser > 0, "non-root uid");
  for (const c of [...pod.containers, ...one(all, "Job", "masq-migrate").spec.template.spec.containers]) {
    assertEquals(c.securityContext.readOnlyRootFilesystem, true, c.name);
    assertEquals(c.securityContext.allowPrivilegeEscalation, false, c.name);
    assert(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, c.name);
    assert(!/[A-Z_]{5,}/.test(JSON.stringify(c.resources)), `${c.name}: resources are filled in`);
  }
  assertEquals(pod.serviceAccountName, one(all, "ServiceAccount", "masq").metadata.name);
  assertEquals(
    one(all, "Job", "masq-migrate").spec.template.spec.containers[0].image,
    pod.containers[0].image,
    "migrate and run are the same image",
  );
  assertEquals(one(all, "Job", "masq-migrate").spec.template.spec.containers[0].args[0], "migrate");
});

Deno.test("deploy/k8s KEDA ScaledObject scales the Deployment on the queue masq consumes", () => {
  const all = manifests();
  const scaled = one(all, "ScaledObject", "masq");
  const config = one(all, "ConfigMap", "masq-config").data as Record<string, string>;
  assertEquals(scaled.spec.scaleTargetRef.kind ?? "Deployment", "Deployment");
  assertEquals(scaled.spec.scaleTargetRef.name, one(all, "Deployment", "masq").metadata.name);
  assert(scaled.spec.minReplicaCount <= scaled.spec.maxReplicaCount, "min <= max");
  const [trigger] = scaled.spec.triggers;
  assertEquals(trigger.type, "aws-sqs-queue");
  assertEquals(trigger.metadata.queueURL, config.SQS_QUEUE_URL);
  assertEquals(trigger.metadata.awsRegion, config.AWS_REGION);
  assert(/^[1-9][0-9]*$/.test(trigger.metadata.queueLength), `queueLength ${trigger.metadata.queueLength}`);
  const auth = one(all, "TriggerAuthentication", trigger.authenticationRef.name);
  assertEquals(auth.spec.podIdentity.provider, "aws");
});

Deno.test("deploy/grafana dashboard: every query uses only metrics masq exports, and the key panels exist", () => {
  const dashboard = JSON.parse(Deno.readTextFileSync(`${ROOT}deploy/grafana/masq.json`));
  const exported = new Set<string>(METRIC_NAMES);
  const titles = new Set<string>();
  let exprs = 0;
  for (const panel of dashboard.panels) {
    titles.add(panel.title);
    for (const target of panel.targets) {
      exprs++;
      const names = [...target.expr.matchAll(/\b((?:masq|process)_[a-z_]+)/g)].map((m) => m[1]);
      assert(names.length > 0, `${panel.title}: no masq metric in ${target.expr}`);
      for (const name of names) {
        const base = name.replace(/_(bucket|sum|count)$/, "");
        assert(exported.has(name) || exported.has(base), `${panel.title}: ${name} is not exported`);
      }
    }
  }
  assert(exprs >= 12, `${exprs} queries`);
  for (const t of ["Throughput", "Rejects", "Retries by kind", "Write latency", "Queue depth", "Queue age"]) {
    assert(titles.has(t), `panel ${t}`);
  }
});

// ---------------------------------------------------------------------------------------------------------
// The database connection as shipped: a LOGIN member of the writer group made by migrate, verify-full TLS
// against the CA mounted at /etc/masq/tls/ca.pem (tests/integration/deploy_test.ts runs the same URLs and
// role setup against a real PostgreSQL, and validates docker-compose.yml).

const WRITER_GROUPS = ["masq_writer", "masq_analyst", "masq_privacy_officer"];
const CA_PATH = "/etc/masq/tls/ca.pem";

function envValue(container: Manifest, name: string): Manifest {
  const e = container.env.find((x: Manifest) => x.name === name);
  assert(e !== undefined, `${container.name}: env ${name}`);
  return e;
}

Deno.test("deploy/k8s connects as a login made by the migrate Job (not a NOLOGIN group), verify-full against the mounted CA", () => {
  const all = manifests();
  const config = one(all, "ConfigMap", "masq-config").data as Record<string, string>;
  const pod = one(all, "Deployment", "masq").spec.template.spec;
  const job = one(all, "Job", "masq-migrate").spec.template.spec;
  const [runner] = pod.containers;
  const [migrator] = job.containers;
  const runUrl = new URL(config.DATABASE_URL);
  const ownerUrl = new URL(envValue(migrator, "DATABASE_URL").value);
  for (const url of [runUrl, ownerUrl]) {
    assertEquals(url.searchParams.get("sslmode"), "verify-full", url.href);
    assertEquals(url.searchParams.get("sslrootcert"), CA_PATH, url.href);
    assertEquals(url.password, "", "no password in a URL");
  }
  assertEquals([runUrl.host, runUrl.pathname], [ownerUrl.host, ownerUrl.pathname], "one database");
  assert(!WRITER_GROUPS.includes(runUrl.username), `${runUrl.username} is a NOLOGIN group role`);
  // The Job makes exactly that login, with the password the Deployment connects with.
  const i = migrator.args.indexOf("--writer-login");
  assert(i > 0 && migrator.args[0] === "migrate", JSON.stringify(migrator.args));
  assertEquals(migrator.args[i + 1], runUrl.username);
  assertEquals(
    envValue(migrator, "MASQ_WRITER_PASSWORD").valueFrom.secretKeyRef,
    envValue(runner, "PGPASSWORD").valueFrom.secretKeyRef,
  );
  // The CA file is mounted where the URLs say, read-only, in both, from a manifest that exists.
  for (const [spec, container] of [[pod, runner], [job, migrator]]) {
    const mount = container.volumeMounts.find((m: Manifest) => CA_PATH.startsWith(`${m.mountPath}/`));
    assert(mount?.readOnly === true, `${container.name}: ${CA_PATH} mounted read-only`);
    const volume = spec.volumes.find((v: Manifest) => v.name === mount.name);
    const source = volume.configMap ?? volume.secret;
    const name = volume.configMap?.name ?? volume.secret?.secretName;
    const item = source.items.find((it: Manifest) => `${mount.mountPath}/${it.path}` === CA_PATH);
    assert(item, `${container.name}: the volume puts a file at ${CA_PATH}`);
    const holder = all.find((m) =>
      (m.kind === "ConfigMap" || m.kind === "Secret") && m.metadata.name === name
    );
    assert(holder && item.key in (holder.data ?? holder.stringData ?? {}), `${name} holds ${item.key}`);
  }
});

Deno.test("deploy/k8s: masq run's Deployment holds the vault's public key only; the private key is in the officer's Job alone", () => {
  const all = manifests();
  const envOf = (m: Manifest) =>
    m.spec.template.spec.containers.flatMap((c: Manifest) => (c.env ?? []).map((e: Manifest) => e.name));
  const deployment = envOf(one(all, "Deployment", "masq"));
  assert(deployment.includes("PII_VAULT_PUBLIC_KEY_FILE"), "run seals with the public key");
  for (
    const secret of [
      "PII_VAULT_PRIVATE_KEY",
      "PII_VAULT_PRIVATE_KEY_FILE",
      "PII_VAULT_KEY",
      "PII_VAULT_KEY_FILE",
    ]
  ) {
    assert(!deployment.includes(secret), `the Deployment must not have ${secret}`);
  }
  const volumes = JSON.stringify(one(all, "Deployment", "masq").spec.template.spec.volumes);
  assert(
    !volumes.includes("masq-officer-keys") && !volumes.includes("private"),
    "no private key mounted in run",
  );
  assert(envOf(one(all, "Job", "masq-officer")).includes("PII_VAULT_PRIVATE_KEY_FILE"));
  const compose = Deno.readTextFileSync(`${ROOT}docker-compose.yml`);
  const masqService = compose.slice(compose.indexOf("\n  masq:"), compose.indexOf("\n  officer:"));
  assert(
    masqService.includes("PII_VAULT_PUBLIC_KEY_FILE") && !masqService.includes("PRIVATE"),
    "compose: run has the public key only",
  );
});
