//! The deployment files start the services the way the code expects.
//!
//! Nothing on these machines runs `docker-compose.yml`, the `Dockerfile` or
//! `deploy/k8s` (no Docker engine, no cluster), so drift between them and
//! the code would go unseen: a misspelt variable is ignored, a bad rule in
//! the ConfigMap makes every pod exit 64, a probe on the wrong port
//! restarts pods forever. These tests read the files and check, per
//! service: every variable set is one a service reads; the variables and
//! the config file given pass that service's own start-up checks (the ones
//! `cx-<service> --check-config` runs); probes and published ports match
//! the listen addresses; the image holds every binary the files run.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use cx_runtime::auth::{Scope, TokenTable};
use cx_runtime::config::VARIABLES;
use cx_runtime::{Config, ServiceName, StartError};
use reqwest::header::{HeaderMap, AUTHORIZATION};
use yaml_rust2::{Yaml, YamlLoader};

const SERVICES: [ServiceName; 4] = [
    ServiceName::Ingest,
    ServiceName::Scoring,
    ServiceName::Alerting,
    ServiceName::Followup,
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_documents(relative: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_vec()
        .map(|items| items.iter().filter_map(text).collect())
        .unwrap_or_default()
}

/// The document of `kind` named `name` among `documents`.
fn find<'a>(documents: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    documents
        .iter()
        .find(|doc| {
            doc["kind"].as_str() == Some(kind) && doc["metadata"]["name"].as_str() == Some(name)
        })
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

/// A mapping of strings, as env or ConfigMap data.
fn string_map(value: &Yaml) -> HashMap<String, String> {
    value
        .as_hash()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
        .collect()
}

/// Runs the checks a service makes on its configuration before it binds or
/// connects anything.
fn check_service(service: ServiceName, env: &HashMap<String, String>) -> Result<(), String> {
    let unknown: Vec<&String> = env
        .keys()
        .filter(|name| name.starts_with("CX_") && !VARIABLES.contains(&name.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(format!("variables no service reads: {unknown:?}"));
    }
    let config = Config::load(service, env).map_err(|e| e.to_string())?;
    let checked: Result<(), StartError> = match service {
        ServiceName::Ingest => cx_ingest::IngestApp::check_config(&config),
        ServiceName::Scoring => cx_scoring::ScoringApp::check_config(&config),
        ServiceName::Alerting => cx_alerting::AlertingApp::check_config(&config),
        ServiceName::Followup => cx_followup::FollowupApp::check_config(&config),
    };
    checked.map_err(|e| e.to_string())
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{addr} has no port"))
}

/// A scratch directory for config files, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("cx-deploy-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binaries the workspace builds: each package with a `src/main.rs`.
fn workspace_binaries() -> BTreeSet<String> {
    let mut binaries = BTreeSet::new();
    for parent in ["services", "crates"] {
        for entry in std::fs::read_dir(repo_root().join(parent)).expect("read dir") {
            let dir = entry.expect("dir entry").path();
            if !dir.join("src/main.rs").exists() {
                continue;
            }
            let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
                .expect("Cargo.toml")
                .parse()
                .expect("Cargo.toml parses");
            let name = manifest["package"]["name"].as_str().expect("package name");
            binaries.insert(name.to_string());
        }
    }
    binaries
}

/// The binaries the Dockerfile copies into the image.
fn image_binaries() -> BTreeSet<String> {
    let dockerfile = read("Dockerfile");
    let line = dockerfile
        .lines()
        .find_map(|line| line.trim().strip_prefix("&& for bin in "))
        .expect("the Dockerfile copies binaries in a `for bin in …; do` loop");
    let list = line.split_once(';').expect("`; do` ends the list").0;
    list.split_whitespace().map(str::to_string).collect()
}

#[test]
fn the_image_holds_every_binary_the_workspace_builds() {
    assert_eq!(image_binaries(), workspace_binaries());
}

#[test]
fn kubernetes_manifests_start_each_service_with_a_configuration_it_accepts() {
    let configmaps = yaml_documents("deploy/k8s/configmap.yaml");
    let secrets = yaml_documents("deploy/k8s/secret.yaml");
    let secret = string_map(&find(&secrets, "Secret", "cxloop-secrets")["stringData"]);
    let scratch = Scratch::new("k8s");
    let image = image_binaries();

    for service in SERVICES {
        let name = format!("cx-{}", service.as_str());
        let documents = yaml_documents(&format!("deploy/k8s/{}.yaml", service.as_str()));
        let deployment = find(&documents, "Deployment", &name);
        let pod = &deployment["spec"]["template"];
        let labels = string_map(&pod["metadata"]["labels"]);
        let selector = &deployment["spec"]["selector"]["matchLabels"];
        assert_eq!(
            string_map(selector),
            labels_subset(&labels, selector),
            "{name}: selector and pod labels"
        );
        let container = &pod["spec"]["containers"][0];
        let args = strings(&container["args"]);
        assert_eq!(args, vec![name.clone()], "{name}: container args");
        assert!(image.contains(&name), "{name} is not in the image");

        // The environment as the kubelet builds it: envFrom, then env.
        let mut env = HashMap::new();
        for source in container["envFrom"].as_vec().expect("envFrom") {
            let map_name = source["configMapRef"]["name"]
                .as_str()
                .expect("configMapRef");
            env.extend(string_map(
                &find(&configmaps, "ConfigMap", map_name)["data"],
            ));
        }
        for variable in container["env"].as_vec().expect("env") {
            let key = variable["name"].as_str().expect("env name").to_string();
            let value = if let Some(value) = text(&variable["value"]) {
                value
            } else {
                let from = &variable["valueFrom"]["secretKeyRef"];
                assert_eq!(
                    from["name"].as_str(),
                    Some("cxloop-secrets"),
                    "{name}: {key}"
                );
                let secret_key = from["key"].as_str().expect("secretKeyRef key");
                secret
                    .get(secret_key)
                    .unwrap_or_else(|| panic!("{name}: {key} names a missing secret key"))
                    .clone()
            };
            env.insert(key, value);
        }

        // CX_CONFIG names a file of a mounted ConfigMap: write that file here.
        let config_path = env.get("CX_CONFIG").expect("CX_CONFIG").clone();
        let (mount_dir, file_name) = config_path.rsplit_once('/').expect("CX_CONFIG is a path");
        let mount = container["volumeMounts"]
            .as_vec()
            .expect("volumeMounts")
            .iter()
            .find(|mount| mount["mountPath"].as_str() == Some(mount_dir))
            .unwrap_or_else(|| panic!("{name}: nothing is mounted at {mount_dir}"));
        let volume = pod["spec"]["volumes"]
            .as_vec()
            .expect("volumes")
            .iter()
            .find(|volume| volume["name"] == mount["name"])
            .expect("the mounted volume");
        let map_name = volume["configMap"]["name"]
            .as_str()
            .expect("a ConfigMap volume");
        let file = string_map(&find(&configmaps, "ConfigMap", map_name)["data"])
            .remove(file_name)
            .unwrap_or_else(|| panic!("{map_name} has no {file_name}"));
        let local = scratch.0.join(format!("{}.toml", service.as_str()));
        std::fs::write(&local, file).expect("write config");
        env.insert("CX_CONFIG".into(), local.display().to_string());

        check_service(service, &env).unwrap_or_else(|e| panic!("{name}: {e}"));

        // Ports and probes against the listen addresses.
        let ports: HashMap<String, u16> = container["ports"]
            .as_vec()
            .expect("ports")
            .iter()
            .map(|port| {
                let number = port["containerPort"].as_i64().expect("containerPort");
                (
                    port["name"].as_str().expect("port name").to_string(),
                    number as u16,
                )
            })
            .collect();
        let http = port_of(&env["CX_HTTP_ADDR"]);
        assert_eq!(ports.get("http"), Some(&http), "{name}: http port");
        assert_eq!(
            ports.get("grpc"),
            Some(&port_of(&env["CX_GRPC_ADDR"])),
            "{name}: grpc port"
        );
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("livenessProbe", "/healthz"),
        ] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"].as_str(), Some(path), "{name}: {probe}");
            let port = &get["port"];
            let port = match port.as_str() {
                Some(named) => ports[named],
                None => port.as_i64().expect("probe port") as u16,
            };
            assert_eq!(port, http, "{name}: {probe} port");
        }
        assert!(
            text(&container["resources"]["limits"]["memory"]).is_some(),
            "{name}: no memory limit"
        );

        // The Service, PodDisruptionBudget and autoscaler find the pods.
        let svc = find(&documents, "Service", &name);
        assert_eq!(
            string_map(&svc["spec"]["selector"]),
            labels_subset(&labels, &svc["spec"]["selector"])
        );
        for port in svc["spec"]["ports"].as_vec().expect("service ports") {
            let target = port["targetPort"].as_str().expect("named targetPort");
            assert!(
                ports.contains_key(target),
                "{name}: Service targets {target}"
            );
        }
        let pdb = find(&documents, "PodDisruptionBudget", &name);
        let pdb_labels = &pdb["spec"]["selector"]["matchLabels"];
        assert_eq!(string_map(pdb_labels), labels_subset(&labels, pdb_labels));
        let hpa = find(&documents, "HorizontalPodAutoscaler", &name);
        assert_eq!(
            hpa["spec"]["scaleTargetRef"]["kind"].as_str(),
            Some("Deployment")
        );
        assert_eq!(
            hpa["spec"]["scaleTargetRef"]["name"].as_str(),
            Some(name.as_str())
        );
    }

    // kustomization.yaml lists every manifest of the directory.
    let kustomization = &yaml_documents("deploy/k8s/kustomization.yaml")[0];
    let listed: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();
    let present: BTreeSet<String> = std::fs::read_dir(repo_root().join("deploy/k8s"))
        .expect("deploy/k8s")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|file| file.ends_with(".yaml") && file != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
}

/// The pod labels a selector names, for comparing with the selector: a
/// selector must name labels the pods have, with their values.
fn labels_subset(labels: &HashMap<String, String>, selector: &Yaml) -> HashMap<String, String> {
    let wanted = string_map(selector);
    assert!(!wanted.is_empty(), "an empty selector matches every pod");
    wanted
        .keys()
        .filter_map(|key| Some((key.clone(), labels.get(key)?.clone())))
        .collect()
}

/// Compose's `${NAME:-default}` and `${NAME}` with nothing set in the
/// environment or `.env`: the file's own defaults.
fn compose_defaults(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let inner = &rest[start + 2..end];
        if let Some((_, default)) = inner.split_once(":-") {
            out.push_str(default);
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A compose mapping with its `<<` merge keys applied (the file's own keys win).
fn merged(value: &Yaml) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(base) = value
        .as_hash()
        .and_then(|hash| hash.get(&Yaml::String("<<".into())))
    {
        out.extend(merged(base));
    }
    out.extend(
        string_map(value)
            .into_iter()
            .filter(|(key, _)| key != "<<")
            .map(|(key, value)| (key, compose_defaults(&value))),
    );
    out
}

/// A compose mapping's `key`, its own or from its `<<` merge key.
fn key<'a>(mapping: &'a Yaml, key: &str) -> &'a Yaml {
    match &mapping[key] {
        Yaml::BadValue => &mapping["<<"][key],
        own => own,
    }
}

#[test]
fn docker_compose_starts_each_service_with_a_configuration_it_accepts() {
    let compose = &yaml_documents("docker-compose.yml")[0];
    let image = image_binaries();
    let mut tokens = HashMap::new();

    for service in SERVICES {
        let name = format!("cx-{}", service.as_str());
        let spec = &compose["services"][service.as_str()];
        assert!(
            !spec.is_badvalue(),
            "no compose service {}",
            service.as_str()
        );
        let command = strings(&spec["command"]);
        assert_eq!(command, vec![name.clone()], "{name}: command");
        assert!(image.contains(&name), "{name} is not in the image");
        let env = merged(&spec["environment"]);
        check_service(service, &env).unwrap_or_else(|e| panic!("{name}: {e}"));
        tokens.insert(service.as_str(), env["CX_AUTH_TOKENS"].clone());

        let http = port_of(&env["CX_HTTP_ADDR"]);
        let grpc = port_of(&env["CX_GRPC_ADDR"]);
        let health = strings(&spec["healthcheck"]["test"]).join(" ");
        assert!(
            health.contains(&format!("http://localhost:{http}/readyz")),
            "{name}: healthcheck {health}"
        );
        let published = strings(&spec["ports"]);
        for port in [grpc, http] {
            assert!(
                published.contains(&format!("127.0.0.1:{port}:{port}")),
                "{name}: {port} not published on 127.0.0.1: {published:?}"
            );
        }
        for dependency in ["kafka", "redis"] {
            assert_eq!(
                key(spec, "depends_on")[dependency]["condition"].as_str(),
                Some("service_healthy"),
                "{name} waits for {dependency}"
            );
        }
    }

    // The demo runs cx-sim as the CRM too: its token needs ingest:write
    // and both follow-up scopes in the services' token table.
    let demo = &compose["services"]["demo"];
    let command: Vec<String> = strings(&demo["command"])
        .iter()
        .map(|arg| compose_defaults(arg))
        .collect();
    assert_eq!(command.first().map(String::as_str), Some("cx-sim"));
    assert!(image.contains("cx-sim"));
    assert!(command.iter().any(|arg| arg == "--crm"), "{command:?}");
    let demo_token = merged(&demo["environment"])["CX_SIM_TOKEN"].clone();
    let table = TokenTable::parse(&tokens["ingest"]).expect("compose tokens parse");
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        format!("Bearer {demo_token}")
            .parse()
            .expect("header value"),
    );
    for scope in [
        Scope::IngestWrite,
        Scope::FollowupsRead,
        Scope::FollowupsWrite,
    ] {
        assert!(
            table.authorize(&headers, scope).is_ok(),
            "the demo token lacks {}",
            scope.as_str()
        );
    }
}

/// Settings that parse but cannot work are refused by the service's own
/// checks, naming the key.
#[test]
fn values_that_cannot_work_are_refused_naming_the_key() {
    let scratch = Scratch::new("values");
    for (service, text, key) in [
        (
            ServiceName::Alerting,
            "[alerting]\nmax_event_age_s = -5\n",
            "alerting.max_event_age_s",
        ),
        (
            ServiceName::Alerting,
            "[alerting]\nmax_batch = 0\n",
            "alerting.max_batch",
        ),
        (
            ServiceName::Followup,
            "[followup.sla]\ncritical_s = 0\n",
            "followup.sla.critical_s",
        ),
        (
            ServiceName::Followup,
            "[followup.sla]\nnormal_s = 0\n",
            "followup.sla.normal_s",
        ),
    ] {
        let path = scratch.0.join(format!("{}.toml", key));
        std::fs::write(&path, text).expect("write");
        let env = HashMap::from([("CX_CONFIG".to_string(), path.display().to_string())]);
        let error = check_service(service, &env).expect_err(text);
        assert!(error.contains(key), "{key}: {error}");
    }
}

/// `cx-<service> --check-config` runs the checks above on a real binary:
/// it accepts the documented example file without binding a port or
/// reaching Kafka or Redis, and refuses a bad key with exit 64 naming it.
#[test]
fn check_config_checks_without_binding_or_connecting_and_exits_64_on_a_bad_key() {
    let example = repo_root().join("deploy/config/cxloop.example.toml");
    // Held for the whole test: a service that tried to bind would fail.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("addr").to_string();
    let scratch = Scratch::new("check");
    for service in SERVICES {
        let name = format!("cx-{}", service.as_str());
        let run_with = |config: &Path, args: &[&str], extra: &[(&str, &str)]| {
            let mut command = std::process::Command::new(cx_tests::binary(&name));
            command
                .args(args)
                .env_clear()
                .env("CX_CONFIG", config)
                .env("CX_GRPC_ADDR", &taken)
                .env("CX_HTTP_ADDR", &taken)
                .env("CX_KAFKA_BROKERS", "127.0.0.1:1")
                .env("CX_REDIS_URL", "redis://127.0.0.1:1")
                .envs(extra.iter().copied());
            output_within(command, std::time::Duration::from_secs(30))
        };
        let run = |config: &Path, args: &[&str]| run_with(config, args, &[]);
        let good = run(&example, &["--check-config"]);
        assert_eq!(good.status.code(), Some(0), "{name}: {good:?}");
        assert_eq!(
            String::from_utf8_lossy(&good.stdout).trim(),
            format!("{name}: configuration is valid")
        );

        let bad = scratch.0.join(format!("{}.toml", service.as_str()));
        std::fs::write(
            &bad,
            format!("[{}]\nretention_dayz = 3\n", service.as_str()),
        )
        .expect("write");
        let refused = run(&bad, &["--check-config"]);
        assert_eq!(refused.status.code(), Some(64), "{name}: {refused:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("retention_dayz"), "{name}: {stderr}");

        // The shared part a service reads at start: the Redis URL and TLS files.
        for (extra, named) in [
            (
                [("CX_REDIS_URL", "http://redis:6379"), ("CX_TLS_CERT", "")],
                "Redis URL",
            ),
            (
                [
                    ("CX_TLS_CERT", "/nonexistent/cert.pem"),
                    ("CX_TLS_KEY", "/nonexistent/key.pem"),
                ],
                "/nonexistent/cert.pem",
            ),
        ] {
            let refused = run_with(&example, &["--check-config"], &extra);
            assert_eq!(refused.status.code(), Some(64), "{name}: {refused:?}");
            let stderr = String::from_utf8_lossy(&refused.stderr);
            assert!(stderr.contains(named), "{name}: {stderr}");
        }

        let misspelt = run(&example, &["--check-confg"]);
        assert_eq!(misspelt.status.code(), Some(64), "{name}: {misspelt:?}");
        let version = run(&example, &["--version"]);
        assert_eq!(version.status.code(), Some(0), "{name}: {version:?}");
        assert!(String::from_utf8_lossy(&version.stdout).starts_with(&name));
    }
}

/// The README's CX_CONFIG example passes every service's checks.
#[test]
fn the_readme_config_example_passes_every_services_checks() {
    let readme = read("README.md");
    let start = readme
        .find("```toml\n# CX_CONFIG example")
        .expect("the README's config example");
    let body = &readme[start + "```toml\n".len()..];
    let example = &body[..body.find("```").expect("end of the example")];
    let scratch = Scratch::new("readme");
    let path = scratch.0.join("readme.toml");
    std::fs::write(&path, example).expect("write");
    for service in SERVICES {
        let env = HashMap::from([("CX_CONFIG".to_string(), path.display().to_string())]);
        check_service(service, &env).unwrap_or_else(|e| panic!("cx-{}: {e}", service.as_str()));
    }
}

/// Runs `command` to its end, or fails the test after `limit`: a binary
/// that tried to connect would otherwise retry forever and hang the test.
fn output_within(
    mut command: std::process::Command,
    limit: std::time::Duration,
) -> std::process::Output {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the binary");
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}
