//! Binaries of other packages of the workspace, for end-to-end tests that run them as an
//! operator does. Cargo tells a test only its own package's binaries (`CARGO_BIN_EXE_*`), so the
//! binary is built here (a no-op when it is fresh) with the profile and target directory of the
//! running test, and its path taken from Cargo's own report.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// `target/<profile>`: the test binary lies in its `deps`.
fn profile_dir() -> PathBuf {
    let exe = env::current_exe().expect("the test knows its own path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("a test binary lies in <target>/<profile>/deps")
}

/// The target directory the running test was built into.
pub(crate) fn target_dir() -> PathBuf {
    let profile_dir = profile_dir();
    profile_dir
        .parent()
        .map(Path::to_path_buf)
        .expect("a target directory")
}

/// The path of binary `bin` of workspace package `package`, built if needed. Panics with Cargo's
/// output when it does not build: a test cannot go on without it.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let profile_dir = profile_dir();
    let target_dir = target_dir();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--message-format=json",
            "--profile",
            profile,
        ])
        .args(["-p", package, "--bin", bin])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo could not build {package}'s {bin}"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .find_map(|message| {
            (message["target"]["name"] == bin)
                .then(|| message["executable"].as_str().map(PathBuf::from))
                .flatten()
        })
        .unwrap_or_else(|| panic!("cargo reported no executable for {package}'s {bin}"))
}
