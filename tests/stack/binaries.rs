//! The service binaries' command lines: settings come from the environment, so the command line
//! only answers `--help` (naming those settings) and `--version`, and an argument nobody reads is
//! refused before anything starts — not taken for a server start that ignores it.

use std::process::{Command, Output};

use test_support::workspace_binary;

/// (package, binary, a setting its help must name)
const SERVICES: &[(&str, &str, &str)] = &[
    ("command-api", "command-api", "COMMAND_API_ADDR"),
    ("query-api", "query-api", "QUERY_API_ADDR"),
    ("projector", "projector", "rebuild"),
];

/// Runs `binary` with `argument` and no token secret, so that a binary which ignored its command
/// line and started anyway would stop at once with its configuration error (exit status 1).
fn run(binary: &std::path::Path, argument: &str) -> Output {
    Command::new(binary)
        .arg(argument)
        .env_remove("TOKEN_SECRET")
        .env_remove("TOKEN_SECRET_FILE")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .output()
        .expect("the binary runs")
}

#[test]
fn every_service_binary_answers_help_and_version_and_refuses_an_unknown_argument() {
    for &(package, bin, setting) in SERVICES {
        let binary = workspace_binary(package, bin);

        let help = run(&binary, "--help");
        let text = String::from_utf8_lossy(&help.stdout);
        assert_eq!(help.status.code(), Some(0), "{bin} --help: {help:?}");
        assert!(text.contains("Usage:"), "{bin} --help: {text}");
        assert!(
            text.contains(setting),
            "{bin} --help names {setting}: {text}"
        );

        let version = run(&binary, "--version");
        assert_eq!(
            version.status.code(),
            Some(0),
            "{bin} --version: {version:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&version.stdout).trim(),
            format!("{bin} {}", env!("CARGO_PKG_VERSION")),
        );

        let unknown = run(&binary, "--no-such-setting");
        assert_eq!(unknown.status.code(), Some(2), "{bin}: {unknown:?}");
        assert!(
            String::from_utf8_lossy(&unknown.stderr).contains("unexpected argument"),
            "{bin}: {unknown:?}"
        );
    }
}
