//! The workspace's rooms, checked over `cargo metadata`: a service never depends on another
//! service's crate, a library in `shared/` never depends on a service, and the end-to-end tests
//! in the top-level `tests/` (stack-tests) run the services' binaries as their own processes
//! instead of linking them — none of them, not even in tests — and the domain crate stays pure (no runtime, network, database or HTTP crate). A dependency
//! that breaks a rule fails here before review has to spot it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Crates that would give the domain IO.
const IO_CRATES: &[&str] = &[
    "tokio",
    "async-nats",
    "sqlx",
    "reqwest",
    "axum",
    "hyper",
    "tower",
    "event-store",
    "tracing-subscriber",
];

struct Package {
    name: String,
    /// "services" or "shared".
    room: String,
    /// (dependency name, kind: "normal", "dev" or "build").
    dependencies: Vec<(String, String)>,
}

fn workspace_packages() -> Vec<Package> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata: {output:?}");
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let root = std::fs::canonicalize(root).expect("workspace root");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| {
            let manifest = Path::new(package["manifest_path"].as_str().expect("manifest path"));
            let relative = manifest.strip_prefix(&root).expect("inside the workspace");
            Package {
                name: package["name"].as_str().expect("name").to_owned(),
                room: relative
                    .components()
                    .next()
                    .and_then(|c| c.as_os_str().to_str())
                    .expect("a top-level folder")
                    .to_owned(),
                dependencies: package["dependencies"]
                    .as_array()
                    .expect("dependencies")
                    .iter()
                    .map(|d| {
                        (
                            d["name"].as_str().expect("dependency name").to_owned(),
                            d["kind"].as_str().unwrap_or("normal").to_owned(),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

#[test]
fn no_service_and_no_library_depends_on_a_service() {
    let packages = workspace_packages();
    let services: Vec<&str> = packages
        .iter()
        .filter(|p| p.room == "services")
        .map(|p| p.name.as_str())
        .collect();
    assert!(services.contains(&"command-api"), "{services:?}");
    let broken: Vec<String> = packages
        .iter()
        .flat_map(|p| {
            p.dependencies
                .iter()
                .filter(|(name, _)| services.contains(&name.as_str()))
                .map(move |(name, _)| {
                    format!("{} ({}) depends on the service {name}", p.name, p.room)
                })
        })
        .collect();
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn the_domain_has_no_io_dependency() {
    let packages = workspace_packages();
    let domain = packages
        .iter()
        .find(|p| p.name == "remediation-domain")
        .expect("the domain crate");
    let io: Vec<&str> = domain
        .dependencies
        .iter()
        .filter(|(name, kind)| kind != "dev" && IO_CRATES.contains(&name.as_str()))
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(io.is_empty(), "the domain crate depends on {io:?}");
}
