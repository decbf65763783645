//! Private mode's secrets for `p2p-node`: the node's persistent static
//! key (the identity file), the network key stretched from a passphrase,
//! and the trust file (docs/PROTOCOL.md §7.4; the core does the rest).
//!
//! Every error is one line for the user; the caller exits 2 with it.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use p2p_core::PeerId;

/// Where the identity lives without `--identity`: under the current
/// directory, so that two nodes started from different folders never share
/// one (and so one id).
pub const DEFAULT_IDENTITY: &str = ".p2p/identity";

/// The KDF's fixed salt. A network key is shared by all its nodes, so the
/// salt cannot be per node; it only separates this use of the passphrase
/// from any other. Changing it (or [`KDF_PARAMS`]) splits every mesh.
pub const KDF_SALT: &[u8] = b"p2p-mesh network key v1";

/// Argon2id parameters: memory in KiB, passes, lanes: 19 MiB, 2 passes,
/// 1 lane (OWASP's minimum for Argon2id), ~0.1 s on the 2-core
/// development machine (BENCHMARKS.md, "private").
pub const KDF_PARAMS: (u32, u32, u32) = (19 * 1024, 2, 1);

/// What an identity file holds: the x25519 private key as 64 lowercase hex
/// digits and a newline.
const KEY_HEX_LEN: usize = 64;

/// Stretches a passphrase into the 32-byte network key (the Noise PSK)
/// with Argon2id, [`KDF_SALT`] and [`KDF_PARAMS`]. An empty key is an error.
pub fn network_key(passphrase: &str) -> Result<[u8; 32], String> {
    if passphrase.is_empty() {
        return Err("the network key is empty".into());
    }
    let (m, t, p) = KDF_PARAMS;
    let params =
        argon2::Params::new(m, t, p, Some(32)).map_err(|e| format!("bad KDF parameters: {e}"))?;
    let kdf = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    kdf.hash_password_into(passphrase.as_bytes(), KDF_SALT, &mut out)
        .map_err(|e| format!("cannot stretch the network key: {e}"))?;
    Ok(out)
}

/// The identity's private key from `path`, created (random from the OS,
/// mode 0600) if the file does not exist. A file that is not a key, or is
/// readable by group or others, is refused and left as it is.
pub fn load_or_create(path: &Path) -> Result<[u8; 32], String> {
    match load(path) {
        Err(LoadError::Missing) => create(path),
        Err(LoadError::Other(e)) => Err(e),
        Ok(k) => Ok(k),
    }
}

enum LoadError {
    Missing,
    Other(String),
}

fn load(path: &Path) -> Result<[u8; 32], LoadError> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LoadError::Missing),
        Err(e) => {
            return Err(LoadError::Other(format!(
                "cannot read identity {shown}: {e}"
            )))
        }
    };
    if !meta.is_file() {
        return Err(LoadError::Other(format!(
            "identity {shown} is not a regular file"
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(LoadError::Other(format!(
                "identity {shown} is readable by others (mode {mode:03o}); run: chmod 600 {shown}"
            )));
        }
    }
    // A key file is 65 bytes; anything much larger is not one (and is not
    // read whole).
    if meta.len() > 1024 {
        return Err(LoadError::Other(format!(
            "identity {shown} is not a p2p-node key file ({} bytes); it was left as it is",
            meta.len()
        )));
    }
    let text = std::fs::read(path)
        .map_err(|e| LoadError::Other(format!("cannot read identity {shown}: {e}")))?;
    parse_key(&text).ok_or_else(|| {
        LoadError::Other(format!(
            "identity {shown} is corrupt (expected {KEY_HEX_LEN} hex digits); it was left as it is"
        ))
    })
}

fn parse_key(text: &[u8]) -> Option<[u8; 32]> {
    let text = std::str::from_utf8(text)
        .ok()?
        .trim_end_matches(['\n', '\r']);
    if text.len() != KEY_HEX_LEN || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

fn create(path: &Path) -> Result<[u8; 32], String> {
    let shown = path.display();
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "identity".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let text: String = key.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n";
    let written = write_private(&tmp, text.as_bytes());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write identity {shown}: {e}"));
    }
    // A hard link, unlike a rename, never replaces a file: two nodes
    // creating the same identity at once end up with one key, the first.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match load(path) {
            Ok(k) => Ok(k),
            Err(LoadError::Missing) => Err(format!("identity {shown} vanished while created")),
            Err(LoadError::Other(e)) => Err(e),
        },
        Err(e) => Err(format!("cannot create identity {shown}: {e}")),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// The ids of a trust file: one per line, `#` starts a comment, blank lines
/// are skipped. An id is 32 hex digits (what `p2p-node --show-id` prints).
pub fn parse_trust(text: &str) -> Result<BTreeSet<PeerId>, String> {
    let mut ids = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        let valid = lower.len() == 32 && lower.bytes().all(|b| b.is_ascii_hexdigit());
        let id = PeerId::parse(&lower)
            .ok()
            .filter(|_| valid)
            .ok_or_else(|| {
                let shown: String = line.chars().take(40).collect();
                format!("line {}: {shown:?} is not a node id (32 hex digits)", n + 1)
            })?;
        ids.insert(id);
    }
    Ok(ids)
}

/// [`parse_trust`] of a file, errors naming it.
pub fn read_trust(path: &Path) -> Result<BTreeSet<PeerId>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read trust file {}: {e}", path.display()))?;
    parse_trust(&text).map_err(|e| format!("trust file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_identity_is_0600_and_loads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/identity");
        let a = load_or_create(&path).unwrap();
        let b = load_or_create(&path).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, [0; 32]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Nothing else (no temp file) is left next to it.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["identity"]);
        let other = load_or_create(&dir.path().join("other")).unwrap();
        assert_ne!(a, other);
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(&path).unwrap_err();
        assert!(
            e.contains("readable by others") && e.contains("chmod 600"),
            "{e}"
        );
    }

    #[test]
    fn a_corrupt_or_short_key_file_is_an_error_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [&b""[..], b"abcd\n", &[b'z'; 64], &[0xff; 65], &[b'a'; 2000]] {
            let path = dir.path().join("identity");
            let _ = std::fs::remove_file(&path);
            write_private(&path, bad).unwrap();
            let e = load_or_create(&path).unwrap_err();
            assert!(e.contains("left as it is"), "{e}");
            assert_eq!(std::fs::read(&path).unwrap(), bad);
        }
    }

    #[test]
    fn the_kdf_is_fixed_and_refuses_an_empty_key() {
        assert!(network_key("").is_err());
        let t = std::time::Instant::now();
        let a = network_key("correct horse").unwrap();
        eprintln!("network_key: {:?}", t.elapsed());
        assert_eq!(a, network_key("correct horse").unwrap());
        assert_ne!(a, network_key("correct horse.").unwrap());
    }

    #[test]
    fn trust_files_take_ids_comments_and_blank_lines() {
        let a = "0123456789abcdef0123456789abcdef";
        let b = "fedcba9876543210FEDCBA9876543210";
        let text = format!("# our nodes\n\n{a}\n  {b}   # bob\n");
        let ids = parse_trust(&text).unwrap();
        let want: BTreeSet<PeerId> = [a, &b.to_ascii_lowercase()]
            .iter()
            .map(|s| PeerId::parse(s).unwrap())
            .collect();
        assert_eq!(ids, want);
        assert!(parse_trust("").unwrap().is_empty());
        for (bad, line) in [
            (format!("{a}\nnot-an-id\n"), 2),
            (format!("# x\n\n{a}x\n"), 3),
            (format!("{a} {a}\n"), 1),
            ("0123456789abcdef0123456789abcdeg\n".into(), 1),
        ] {
            let e = parse_trust(&bad).unwrap_err();
            assert!(e.starts_with(&format!("line {line}:")), "{e}");
        }
    }
}
