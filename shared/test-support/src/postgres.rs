//! A PostgreSQL server of a test's own, for faults the machine's shared server must not suffer
//! (stopping it mid-test): `initdb` into a temporary directory, a free loopback port, trust
//! authentication, stopped and removed on drop. As root (CI) the server runs as the `postgres`
//! user, since PostgreSQL refuses to run as root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TestDatabase, free_port, unique_dir, wait_until_listening};

/// A private PostgreSQL server.
#[derive(Debug)]
pub struct PostgresServer {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

/// The newest installed server's programs (Debian: `/usr/lib/postgresql/<version>/bin`).
fn server_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server programs under /usr/lib/postgresql (Debian's postgresql)")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").is_file())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop().expect("an installed PostgreSQL server")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

impl PostgresServer {
    /// Creates and starts a server; returns once it accepts connections.
    pub fn start() -> Self {
        let dir = unique_dir("pg-test");
        if running_as_root() {
            let owned = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(owned.success(), "chown {dir:?} to postgres");
        }
        let server = Self {
            port: free_port(),
            bin: server_bin(),
            dir,
        };
        server.run(
            "initdb",
            &[
                "-D",
                &server.data(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        server.start_again();
        server
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Runs one of the server's programs, as `postgres` when this process is root; panics when
    /// it fails.
    fn run(&self, program: &str, args: &[&str]) {
        assert!(self.try_run(program, args), "{program} {args:?} failed");
    }

    fn try_run(&self, program: &str, args: &[&str]) -> bool {
        let program = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Starts the stopped server and waits until it answers.
    fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
        wait_until_listening(self.port);
    }

    /// The server's URL without a database: `TestDatabase::create_on` takes it.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// A fresh database on this server.
    pub fn database(&self) -> TestDatabase {
        TestDatabase::create_on(&self.url())
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: no checkpoint, clients cut
    /// off); [`PostgresServer::restart`] brings it back.
    pub fn crash(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }

    /// Starts the server after [`PostgresServer::crash`]; it recovers from its WAL first.
    pub fn restart(&self) {
        self.start_again();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.accepts_queries() {
            assert!(Instant::now() < deadline, "PostgreSQL did not come back");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server cleanly, keeps a copy of its data directory, and starts it again: what
    /// [`PostgresServer::go_back`] returns to. Its clients' sessions end, as in any restart.
    pub fn save(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
        copy_dir(&self.data(), &self.saved());
        self.restart();
    }

    /// Puts the server back to what [`PostgresServer::save`] kept, as a crash that lost the
    /// commits since (made with `synchronous_commit` off), or a restored backup, would: stops it
    /// at once, replaces its data directory with the copy, and starts it again.
    pub fn go_back(&self) {
        self.crash();
        fs::remove_dir_all(self.data()).expect("remove the data directory");
        copy_dir(&self.saved(), &self.data());
        self.restart();
    }

    fn saved(&self) -> String {
        self.dir.join("saved").display().to_string()
    }

    fn accepts_queries(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Where the server keeps its log, for a failing test to show.
    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }
}

/// `cp -a`: owner and modes kept, which the server checks on its data directory.
fn copy_dir(from: &str, to: &str) {
    let copied = Command::new("cp")
        .args(["-a", from, to])
        .status()
        .expect("cp");
    assert!(copied.success(), "cp -a {from} {to}");
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if Path::new(&self.data()).join("postmaster.pid").exists() {
            self.try_run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
