//! The key files behind [`crate::access`]: one nkey seed per service, made once and kept, and the
//! nats-server configuration naming their public keys; and logging in with a seed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nkeys::{KeyPair, KeyPairType};

use crate::access::{Layout, Service, render_accounts};

/// The nats-server configuration file written beside the seeds.
pub const AUTH_CONF: &str = "auth.conf";

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no NATS user seed: {reason}")]
    NotASeed { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialsError + '_ {
    move |source| CredentialsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The seed file of `service` in `dir`.
pub fn nkey_file(dir: &Path, service: Service) -> PathBuf {
    dir.join(format!("{}.nk", service.name()))
}

/// Reads a user seed (`SU…`) from `path`. Checked here because a client handed something else
/// connects without a key and is then refused with no word about why.
pub fn read_seed(path: &Path) -> Result<KeyPair, CredentialsError> {
    let text = fs::read_to_string(path).map_err(io(path))?;
    let not_a_seed = |reason: String| CredentialsError::NotASeed {
        path: path.to_owned(),
        reason,
    };
    let pair = KeyPair::from_seed(text.trim()).map_err(|e| not_a_seed(e.to_string()))?;
    if pair.key_pair_type() != KeyPairType::User {
        return Err(not_a_seed(format!(
            "a {:?} key, not a user key",
            pair.key_pair_type()
        )));
    }
    Ok(pair)
}

/// `options` logging in as `service` with the seed in `nkey_file`, replies under the service's
/// own inbox prefix. Without a seed file the options stay anonymous, for a development server
/// that runs without authentication.
pub fn login(
    options: async_nats::ConnectOptions,
    service: Service,
    nkey_file: Option<&Path>,
) -> Result<async_nats::ConnectOptions, CredentialsError> {
    let Some(path) = nkey_file else {
        return Ok(options);
    };
    let pair = read_seed(path)?;
    let seed = pair.seed().map_err(|e| CredentialsError::NotASeed {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(options
        .nkey(seed)
        .custom_inbox_prefix(service.inbox_prefix()))
}

/// Makes sure `dir` holds a seed for every service (keeping the ones already there) and an
/// `auth.conf` granting each its permissions under `layout`. Running it again changes nothing.
pub fn ensure(dir: &Path, layout: &Layout) -> Result<PathBuf, CredentialsError> {
    let users = ensure_seeds(dir)?;
    write_conf(dir, &render_accounts(&[(layout, &users)]))
}

/// Several deployments on one server, each in an account of its own: the seeds of each in
/// `dir/<account>/`, one `dir/auth.conf` with every account. Running it again changes nothing.
pub fn ensure_deployments(dir: &Path, layouts: &[Layout]) -> Result<PathBuf, CredentialsError> {
    let mut users = Vec::new();
    for layout in layouts {
        users.push(ensure_seeds(&dir.join(layout.account()))?);
    }
    let deployments: Vec<(&Layout, &[(Service, String)])> = layouts
        .iter()
        .zip(&users)
        .map(|(layout, users)| (layout, users.as_slice()))
        .collect();
    write_conf(dir, &render_accounts(&deployments))
}

/// A seed for every service in `dir`, made if missing: the services with their public keys.
fn ensure_seeds(dir: &Path) -> Result<Vec<(Service, String)>, CredentialsError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let mut users = Vec::new();
    for service in Service::ALL {
        let path = nkey_file(dir, service);
        if !path.exists() {
            write_new_seed(&path)?;
        }
        users.push((service, read_seed(&path)?.public_key()));
    }
    Ok(users)
}

/// `dir/auth.conf` with `text`, replaced whole, and only when it changes.
fn write_conf(dir: &Path, text: &str) -> Result<PathBuf, CredentialsError> {
    let conf = dir.join(AUTH_CONF);
    if fs::read_to_string(&conf).ok().as_deref() != Some(text) {
        let staged = dir.join(format!(".{AUTH_CONF}.new"));
        // Left over by an interrupted run: its mode is not ours to trust.
        let _ = fs::remove_file(&staged);
        write_private(&staged, text.as_bytes())?;
        fs::rename(&staged, &conf).map_err(io(&conf))?;
    }
    Ok(conf)
}

fn write_new_seed(path: &Path) -> Result<(), CredentialsError> {
    let seed = KeyPair::new_user()
        .seed()
        .map_err(|e| CredentialsError::NotASeed {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    write_private(path, format!("{seed}\n").as_bytes())
}

/// Created with mode 0600, so the secret is never readable by others, not even for an instant;
/// never over an existing file.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CredentialsError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::StreamSettings;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("kh63-credentials-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn seeds_are_private_and_kept_across_runs() {
        let dir = scratch("kept");
        let layout = Layout::new(&StreamSettings::default(), "");
        let conf = ensure(&dir, &layout).expect("first run");
        let first: Vec<String> = Service::ALL
            .iter()
            .map(|s| fs::read_to_string(nkey_file(&dir, *s)).expect("seed"))
            .collect();
        for service in Service::ALL {
            let mode = fs::metadata(nkey_file(&dir, service))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{}", service.name());
        }
        let rendered = fs::read_to_string(&conf).expect("auth.conf");
        ensure(&dir, &layout).expect("second run");
        let second: Vec<String> = Service::ALL
            .iter()
            .map(|s| fs::read_to_string(nkey_file(&dir, *s)).expect("seed"))
            .collect();
        assert_eq!(first, second);
        assert_eq!(rendered, fs::read_to_string(&conf).expect("auth.conf"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_is_not_a_user_seed_is_refused() {
        let dir = scratch("refused");
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("x.nk");
        fs::write(&path, "not a seed").expect("write");
        assert!(matches!(
            read_seed(&path),
            Err(CredentialsError::NotASeed { .. })
        ));
        let account = KeyPair::new_account().seed().expect("seed");
        fs::write(&path, account).expect("write");
        assert!(matches!(
            read_seed(&path),
            Err(CredentialsError::NotASeed { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
