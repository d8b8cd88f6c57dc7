//! The deployment files work: the Dockerfile's build stage has every file `cargo build` needs
//! (sources, declared targets, compile-time includes) and builds the `zaloflow` binary that the
//! final stage copies and runs; every `COPY` source exists; `fly.toml` matches the service's
//! defaults (internal port, health check path answering 200, volume on the SQLite folder,
//! rules where the image puts them).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, Default)]
struct Stage {
    name: Option<String>,
    workdir: String,
    /// (flags, sources, destination)
    copies: Vec<(Vec<String>, Vec<String>, String)>,
    runs: Vec<String>,
    env: BTreeMap<String, String>,
    expose: Vec<String>,
    cmd: Vec<String>,
}

/// Instructions of a Dockerfile: continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (kw, rest) = cur.split_once(char::is_whitespace).unwrap_or((&cur, ""));
        out.push((kw.to_ascii_uppercase(), rest.trim().to_string()));
        cur.clear();
    }
    assert!(
        cur.is_empty(),
        "the Dockerfile ends inside a continued line"
    );
    out
}

/// `["a", "b"]` (exec form) or `a b` (shell form) as words.
fn words(rest: &str) -> Vec<String> {
    if rest.starts_with('[') {
        serde_json::from_str(rest).expect("exec form is a JSON array")
    } else {
        rest.split_whitespace().map(str::to_string).collect()
    }
}

fn stages(text: &str) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    for (kw, rest) in instructions(text) {
        if kw == "FROM" {
            let w = words(&rest);
            let name = w
                .iter()
                .position(|x| x.eq_ignore_ascii_case("as"))
                .map(|i| w[i + 1].clone());
            out.push(Stage {
                name,
                workdir: "/".into(),
                ..Default::default()
            });
            continue;
        }
        let st = out.last_mut().expect("an instruction before FROM");
        match kw.as_str() {
            "WORKDIR" => st.workdir = absolute(&st.workdir, &rest),
            "COPY" | "ADD" => {
                let w = words(&rest);
                let (flags, args): (Vec<String>, Vec<String>) =
                    w.into_iter().partition(|x| x.starts_with("--"));
                let (dest, sources) = args.split_last().expect("COPY has a destination");
                st.copies.push((flags, sources.to_vec(), dest.clone()));
            }
            "RUN" => st.runs.push(rest),
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
                    st.env.insert(k.into(), v.trim_matches('"').into());
                }
            }
            "EXPOSE" => st.expose.extend(words(&rest)),
            "CMD" => st.cmd = words(&rest),
            _ => {}
        }
    }
    out
}

/// `p` resolved against the folder `base` (both in the image).
fn absolute(base: &str, p: &str) -> String {
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{}/{p}", base.trim_end_matches('/'))
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Where a repository path lands in the image, if this stage copies it.
fn image_path_of(st: &Stage, repo_path: &str) -> Option<String> {
    for (flags, sources, dest) in &st.copies {
        if flags.iter().any(|f| f.starts_with("--from")) {
            continue;
        }
        for src in sources {
            let src = src.trim_end_matches('/').trim_start_matches("./");
            let rest = if repo_path == src {
                Some("")
            } else {
                repo_path.strip_prefix(&format!("{src}/"))
            };
            let Some(rest) = rest else { continue };
            let is_dir = repo().join(src).is_dir();
            let dest_abs = absolute(&st.workdir, dest);
            // A folder's contents go into the destination; a file into a destination folder
            // (several sources, or a trailing slash) keeps its name.
            let base = if is_dir {
                dest_abs
            } else if sources.len() > 1 || dest.ends_with('/') || dest == "." {
                absolute(&dest_abs, Path::new(src).file_name()?.to_str()?)
            } else {
                dest_abs
            };
            return Some(if rest.is_empty() {
                base
            } else {
                absolute(&base, rest)
            });
        }
    }
    None
}

/// Files `cargo build --release --bin zaloflow` reads: the manifest and lock file, the library
/// and binary sources, the file of every target the manifest declares (cargo refuses a
/// manifest whose targets are missing), and what the non-test code includes at compile time.
fn build_inputs() -> Vec<String> {
    let manifest: toml::Table = std::fs::read_to_string(repo().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mut out = vec![
        "Cargo.toml".to_string(),
        "Cargo.lock".to_string(),
        "src/lib.rs".to_string(),
        "src/main.rs".to_string(),
    ];
    for (kind, dir) in [
        ("bin", "src/bin"),
        ("bench", "benches"),
        ("test", "tests"),
        ("example", "examples"),
    ] {
        for t in manifest
            .get(kind)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let path = match t.get("path").and_then(|p| p.as_str()) {
                Some(p) => p.to_string(),
                None => format!("{dir}/{}.rs", t["name"].as_str().unwrap()),
            };
            out.push(path);
        }
    }
    // The workspace's path crates: their manifests and sources.
    let members: Vec<String> = manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let mut crates = vec![repo()];
    for m in &members {
        out.push(format!("{m}/Cargo.toml"));
        out.push(format!("{m}/src/lib.rs"));
        if repo().join(m).join("build.rs").exists() {
            out.push(format!("{m}/build.rs"));
        }
        crates.push(repo().join(m));
    }
    let root = repo().canonicalize().unwrap();
    let relative = |abs: std::path::PathBuf| {
        let abs = std::fs::canonicalize(&abs).unwrap_or(abs);
        abs.strip_prefix(&root).unwrap().display().to_string()
    };
    // sqlx::migrate!("…"), include_str!("…"), include_bytes!("…") outside test modules.
    for manifest_dir in crates {
        let mut stack = vec![manifest_dir.join("src")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let text = std::fs::read_to_string(&p).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap();
                for mac in ["migrate!(\"", "include_str!(\"", "include_bytes!(\""] {
                    for piece in code.split(mac).skip(1) {
                        let arg = piece.split('"').next().unwrap();
                        out.push(if mac.starts_with("migrate") {
                            // Relative to the manifest's folder.
                            relative(manifest_dir.join(arg))
                        } else {
                            relative(p.parent().unwrap().join(arg))
                        });
                    }
                }
            }
        }
    }
    out
}

fn dockerfile() -> Vec<Stage> {
    stages(&std::fs::read_to_string(repo().join("Dockerfile")).unwrap())
}

#[test]
fn every_copy_source_exists_and_is_not_ignored() {
    let ignored: Vec<String> = std::fs::read_to_string(repo().join(".dockerignore"))
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut n = 0;
    for st in dockerfile() {
        for (flags, sources, _) in &st.copies {
            if flags.iter().any(|f| f.starts_with("--from")) {
                continue;
            }
            for s in sources {
                n += 1;
                assert!(
                    repo().join(s).exists(),
                    "Dockerfile copies {s}, which is not in the repository"
                );
                let s = s.trim_start_matches("./").trim_end_matches('/');
                assert!(
                    !ignored
                        .iter()
                        .any(|i| s == i || s.starts_with(&format!("{i}/"))),
                    "{s} is excluded by .dockerignore"
                );
            }
        }
    }
    assert!(n >= 4, "only {n} COPY sources: is the Dockerfile parsed?");
}

#[test]
fn the_build_stage_builds_the_binary_the_image_runs() {
    let stages = dockerfile();
    assert!(stages.len() >= 2, "a build stage and a runtime stage");
    let last = stages.last().unwrap();
    // The runtime stage copies the binary out of a build stage and runs `zaloflow serve`.
    let (flags, sources, dest) = last
        .copies
        .iter()
        .find(|(f, s, _)| {
            f.iter().any(|x| x.starts_with("--from=")) && s.iter().any(|x| x.ends_with("/zaloflow"))
        })
        .expect("COPY --from=<build> …/zaloflow");
    let from = flags
        .iter()
        .find_map(|f| f.strip_prefix("--from="))
        .unwrap();
    let build = stages
        .iter()
        .find(|s| s.name.as_deref() == Some(from))
        .unwrap_or_else(|| panic!("no stage named {from}"));
    let artifact = &sources[0];
    assert_eq!(
        *artifact,
        format!(
            "{}/target/release/zaloflow",
            build.workdir.trim_end_matches('/')
        ),
        "the binary is copied from where `cargo build --release` puts it"
    );
    let on_path = absolute(&last.workdir, dest);
    assert!(
        on_path == "/usr/local/bin/zaloflow" || on_path == "/usr/bin/zaloflow",
        "{on_path}"
    );
    assert_eq!(last.cmd, ["zaloflow", "serve"]);

    let cargo = build
        .runs
        .iter()
        .find(|r| r.contains("cargo build"))
        .expect("the build stage runs cargo build");
    assert!(cargo.contains("--release"), "{cargo}");
    assert!(cargo.contains("--locked"), "{cargo}");
    assert!(
        cargo.contains("--bin zaloflow") || !cargo.contains("--bin"),
        "{cargo}"
    );
    assert!(
        !cargo.contains("CARGO_TARGET_DIR") && !cargo.contains("--target-dir"),
        "{cargo}"
    );
    // Everything cargo reads is in the build stage, at the same place relative to WORKDIR.
    let inputs = build_inputs();
    assert!(
        inputs.iter().any(|p| p == "migrations/sqlite"),
        "{inputs:?}"
    );
    for p in &inputs {
        assert!(repo().join(p).exists(), "{p} is not in the repository");
        let expected = absolute(&build.workdir, p);
        match image_path_of(build, p) {
            Some(at) => assert_eq!(at, expected, "{p} lands elsewhere in the build stage"),
            None => panic!(
                "`cargo build` needs {p}, but the build stage does not copy it \
                 (add a COPY to the Dockerfile)"
            ),
        }
    }
}

struct Fly {
    toml: toml::Table,
}

impl Fly {
    fn load() -> Fly {
        Fly {
            toml: std::fs::read_to_string(repo().join("fly.toml"))
                .unwrap()
                .parse()
                .expect("fly.toml parses"),
        }
    }
    fn env(&self) -> BTreeMap<String, String> {
        self.toml["env"]
            .as_table()
            .expect("[env]")
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().expect("env values are strings").into(),
                )
            })
            .collect()
    }
    fn service(&self) -> &toml::Table {
        self.toml["http_service"]
            .as_table()
            .expect("[http_service]")
    }
    fn checks(&self) -> Vec<&toml::Table> {
        self.service()
            .get("checks")
            .and_then(|c| c.as_array())
            .expect("[[http_service.checks]]")
            .iter()
            .map(|c| c.as_table().unwrap())
            .collect()
    }
}

/// The folder of a `sqlite://…` URL's file.
fn sqlite_dir(url: &str) -> String {
    let path = url
        .strip_prefix("sqlite://")
        .expect("a sqlite:// URL")
        .split('?')
        .next()
        .unwrap();
    assert!(path.starts_with('/'), "an absolute path: {url}");
    Path::new(path).parent().unwrap().display().to_string()
}

#[test]
fn fly_toml_matches_the_service_defaults_and_the_image() {
    let fly = Fly::load();
    let defaults = zaloflow::config::Config::from_map(&BTreeMap::new()).unwrap();
    let env = fly.env();

    let docker = fly
        .toml
        .get("build")
        .and_then(|b| b.get("dockerfile"))
        .and_then(|d| d.as_str())
        .unwrap_or("Dockerfile");
    assert!(repo().join(docker).is_file(), "{docker}");

    // The port Fly sends traffic to is the one the service listens on.
    let internal = fly.service()["internal_port"].as_integer().unwrap();
    assert_eq!(internal, i64::from(defaults.port));
    if let Some(p) = env.get("PORT") {
        assert_eq!(p, &internal.to_string());
    }
    let image = dockerfile_env();
    assert_eq!(image.get("PORT"), Some(&internal.to_string()));
    assert!(dockerfile_expose().contains(&internal.to_string()));

    // Health checks: GET /healthz (answering 200 is checked on a running app below).
    let checks = fly.checks();
    assert!(!checks.is_empty());
    for c in &checks {
        assert_eq!(c["path"].as_str(), Some("/healthz"));
        assert_eq!(
            c.get("method").and_then(|m| m.as_str()).unwrap_or("GET"),
            "GET"
        );
    }

    // The SQLite file lives on the volume, in the image too.
    let db = env.get("DATABASE_URL").expect("DATABASE_URL in [env]");
    let dir = sqlite_dir(db);
    let mounts = fly.toml["mounts"]
        .as_array()
        .map(|a| a.iter().map(|m| m.as_table().unwrap().clone()).collect())
        .unwrap_or_else(|| vec![fly.toml["mounts"].as_table().unwrap().clone()]);
    assert!(
        mounts
            .iter()
            .any(|m| m["destination"].as_str() == Some(dir.as_str())),
        "a volume mounted on {dir}: {mounts:?}"
    );
    assert_eq!(image.get("DATABASE_URL"), Some(db));

    // The rules folder is where the image puts the shipped rules.
    let rules = env.get("ZALOFLOW_RULES").expect("ZALOFLOW_RULES in [env]");
    assert_eq!(image.get("ZALOFLOW_RULES"), Some(rules));
    let last = dockerfile().pop().unwrap();
    assert_eq!(
        image_path_of(&last, "rules").as_deref(),
        Some(rules.as_str())
    );
    assert!(repo().join("rules").is_dir());

    // Every [env] key is one the service reads, and together they are a valid configuration.
    for k in env.keys() {
        assert!(
            zaloflow::config::KEYS.contains(&k.as_str()) || k == "RUST_LOG",
            "fly.toml sets {k}, which zaloflow does not read"
        );
    }
    let cfg = zaloflow::config::Config::from_map(&env).expect("fly.toml's [env] is valid");
    assert_eq!(cfg.port, defaults.port);
}

fn dockerfile_env() -> BTreeMap<String, String> {
    dockerfile().pop().unwrap().env
}

fn dockerfile_expose() -> Vec<String> {
    dockerfile().pop().unwrap().expose
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fly_health_checks_answer_200_on_a_running_app() {
    let fly = Fly::load();
    let db = Db::new("sqlite").await;
    let app = TestApp::spawn(config(db.url(), &[])).await;
    for c in fly.checks() {
        let path = c["path"].as_str().unwrap();
        let r = client()
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    app.shutdown().await;
}

#[test]
fn the_parsers_see_what_is_written() {
    let text = "# build\nFROM rust:1 AS build\nWORKDIR /src\nCOPY Cargo.toml \\\n  Cargo.lock ./\n\
                COPY src ./src\nRUN cargo build --release\nFROM debian\nWORKDIR /app\n\
                COPY --from=build /src/target/release/zaloflow /usr/local/bin/zaloflow\n\
                COPY rules ./rules\nENV A=1 B=\"two\"\nCMD [\"zaloflow\", \"serve\"]\n";
    let st = stages(text);
    assert_eq!(st.len(), 2);
    assert_eq!(st[0].name.as_deref(), Some("build"));
    assert_eq!(st[0].copies[0].1, ["Cargo.toml", "Cargo.lock"]);
    assert_eq!(
        image_path_of(&st[0], "Cargo.lock").as_deref(),
        Some("/src/Cargo.lock")
    );
    assert_eq!(
        image_path_of(&st[0], "src/lib.rs").as_deref(),
        Some("/src/src/lib.rs")
    );
    assert_eq!(image_path_of(&st[0], "benches/rules.rs"), None);
    assert_eq!(
        image_path_of(&st[1], "rules").as_deref(),
        Some("/app/rules")
    );
    assert_eq!(st[1].env["B"], "two");
    assert_eq!(st[1].cmd, ["zaloflow", "serve"]);
    assert_eq!(sqlite_dir("sqlite:///data/zaloflow.db?mode=rwc"), "/data");
    assert!(build_inputs().contains(&"benches/rules.rs".to_string()));
}
