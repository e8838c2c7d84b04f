//! The store's `keyring` file: the random master key, wrapped once per way of unlocking it.
//!
//! A passphrase slot derives a key-encryption key with Argon2id (parameters stored in the slot,
//! so they can be raised later without breaking old stores); a key-file slot uses a random
//! 256-bit secret kept in a separate file (mode 0600) as the key-encryption key. Either slot
//! unwraps the same master key with XChaCha20-Poly1305; a wrong passphrase or key file fails
//! authentication and is reported as such, without touching anything.
//!
//! Authentication failing does not tell a wrong key from a damaged slot, so each slot also
//! carries a checksum of its own stored fields (`check`: SHA-256 of public values, salt and
//! wrapped key, which any reader of the file sees anyway, so it tells an attacker nothing).
//! A slot whose fields do not match their checksum, or do not even decode, is reported as
//! damaged, never as a wrong key. Keyrings written before the checksum have none; for them a
//! failure can only say "wrong key, or a damaged slot".

use super::{unwrap_key, wrap_key, Key};
use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use zeroize::Zeroizing;

pub const KEYRING_FORMAT: &str = "consentfs-keyring";
pub const KEYRING_VERSION: u32 = 1;
const KEYFILE_PREFIX: &str = "consentfs-keyfile-v1 ";

/// Argon2id cost: 64 MiB, 3 passes, 1 lane (the OWASP-recommended minimum is 19 MiB, 2 passes).
pub const ARGON2_M_KIB: u32 = 64 * 1024;
pub const ARGON2_T: u32 = 3;
pub const ARGON2_P: u32 = 1;

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Slot {
    Passphrase {
        m_kib: u32,
        t: u32,
        p: u32,
        salt: String,
        wrapped: String,
        /// See the module doc; absent in keyrings of older versions (still read the same).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check: Option<String>,
    },
    KeyFile {
        wrapped: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check: Option<String>,
    },
}

/// Length of a wrapped master key: nonce, key, tag.
const WRAPPED_LEN: usize = super::NONCE_LEN + super::KEY_LEN + super::TAG_LEN;

impl Slot {
    /// The checksum of this slot's stored fields (hex of 16 bytes of SHA-256).
    fn checksum(&self) -> String {
        use sha2::Digest;
        let text = match self {
            Slot::Passphrase {
                m_kib,
                t,
                p,
                salt,
                wrapped,
                ..
            } => format!("passphrase\n{m_kib}\n{t}\n{p}\n{salt}\n{wrapped}"),
            Slot::KeyFile { wrapped, .. } => format!("key_file\n{wrapped}"),
        };
        hex::encode(&sha2::Sha256::digest(text.as_bytes())[..16])
    }

    fn with_checksum(mut self) -> Slot {
        let sum = self.checksum();
        match &mut self {
            Slot::Passphrase { check, .. } | Slot::KeyFile { check, .. } => *check = Some(sum),
        }
        self
    }

    /// Why this slot is damaged, if its fields show it (a checksum that does not match, or
    /// values that do not decode); `None` says nothing about the key.
    fn damage(&self) -> Option<&'static str> {
        let (wrapped, check) = match self {
            Slot::Passphrase {
                salt,
                wrapped,
                check,
                ..
            } => {
                if hex::decode(salt).map_or(true, |s| s.len() != 16) {
                    return Some("its salt does not decode");
                }
                (wrapped, check)
            }
            Slot::KeyFile { wrapped, check } => (wrapped, check),
        };
        if hex::decode(wrapped).map_or(true, |w| w.len() != WRAPPED_LEN) {
            return Some("its wrapped key does not decode");
        }
        match check {
            Some(c) if *c != self.checksum() => Some("its contents do not match their checksum"),
            _ => None,
        }
    }

    fn has_checksum(&self) -> bool {
        matches!(
            self,
            Slot::Passphrase { check: Some(_), .. } | Slot::KeyFile { check: Some(_), .. }
        )
    }
}

/// The error for a keyring none of whose slots of one kind opened: damaged slots are named
/// (1-based, as they appear in the file); otherwise the key is wrong, as far as can be told.
fn not_opened(damaged: &[(usize, &str)], kind: &str, wrong: String, unchecked: bool) -> Error {
    if damaged.is_empty() {
        let wrong = if unchecked {
            format!("{wrong} (or the keyring's {kind} slot is damaged: this keyring predates slot checksums, so the two cannot be told apart)")
        } else {
            wrong
        };
        return Error::WrongKey(wrong);
    }
    let which: Vec<String> = damaged
        .iter()
        .map(|(i, why)| format!("slot {i} ({kind}): {why}"))
        .collect();
    Error::integrity(
        "keyring",
        format!(
            "the keyring is damaged ({}); the store cannot be opened with this {kind} until the keyring is restored from a backup",
            which.join("; ")
        ),
    )
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Keyring {
    pub format: String,
    pub version: u32,
    pub slots: Vec<Slot>,
}

/// How the user proves they may open the store.
pub enum Unlock {
    Passphrase(Zeroizing<String>),
    KeyFile(std::path::PathBuf),
}

fn slot_aad(kind: &str) -> Vec<u8> {
    format!("consentfs keyring v{KEYRING_VERSION} {kind}").into_bytes()
}

fn argon2_kek(pass: &str, salt: &[u8], m_kib: u32, t: u32, p: u32) -> Result<Key> {
    let params = argon2::Params::new(m_kib, t, p, Some(32))
        .map_err(|e| Error::invalid(format!("keyring has unusable Argon2 parameters: {e}")))?;
    let a2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    a2.hash_password_into(pass.as_bytes(), salt, out.as_mut())
        .map_err(|e| Error::invalid(format!("cannot derive key from passphrase: {e}")))?;
    Ok(Key::from_slice(out.as_ref()).expect("32-byte output"))
}

impl Keyring {
    /// A keyring for `master` with a slot for each way of unlocking given.
    pub fn create(
        master: &Key,
        passphrase: Option<&str>,
        key_file_secret: Option<&Key>,
    ) -> Result<Keyring> {
        let mut slots = Vec::new();
        if let Some(pass) = passphrase {
            let salt = super::random_bytes::<16>();
            let kek = argon2_kek(pass, &salt, ARGON2_M_KIB, ARGON2_T, ARGON2_P)?;
            slots.push(
                Slot::Passphrase {
                    m_kib: ARGON2_M_KIB,
                    t: ARGON2_T,
                    p: ARGON2_P,
                    salt: hex::encode(salt),
                    wrapped: hex::encode(wrap_key(&kek, &slot_aad("passphrase"), master)?),
                    check: None,
                }
                .with_checksum(),
            );
        }
        if let Some(secret) = key_file_secret {
            slots.push(
                Slot::KeyFile {
                    wrapped: hex::encode(wrap_key(secret, &slot_aad("key_file"), master)?),
                    check: None,
                }
                .with_checksum(),
            );
        }
        if slots.is_empty() {
            return Err(Error::invalid("a store needs a passphrase or a key file: pass --passphrase-file FILE or --key-file FILE"));
        }
        Ok(Keyring {
            format: KEYRING_FORMAT.into(),
            version: KEYRING_VERSION,
            slots,
        })
    }

    pub fn load(path: &Path) -> Result<Keyring> {
        let text = std::fs::read_to_string(path).at("read keyring", path)?;
        let ring: Keyring = serde_json::from_str(&text).map_err(|e| {
            Error::integrity(
                "keyring",
                format!("{} is not a valid keyring: {e}", path.display()),
            )
        })?;
        if ring.format != KEYRING_FORMAT {
            return Err(Error::integrity(
                "keyring",
                format!("{} is not a consentfs keyring", path.display()),
            ));
        }
        if ring.version > KEYRING_VERSION {
            return Err(Error::invalid(format!(
                "the keyring is format version {} but this consentfs reads up to {KEYRING_VERSION}: upgrade consentfs",
                ring.version
            )));
        }
        Ok(ring)
    }

    /// Write the keyring to `path` (which must not exist yet), durably.
    pub fn save_new(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("keyring serializes");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .at("create keyring", path)?;
        f.write_all(text.as_bytes()).at("write keyring", path)?;
        f.sync_all().at("sync keyring", path)
    }

    /// Write the keyring over the one at `path`, atomically and durably: a temporary file
    /// (0600) fsynced and renamed onto it, then the folder fsynced. A crash leaves the old
    /// keyring or the new one, never a half-written one (a store without a whole keyring
    /// cannot be opened at all).
    pub fn save_replace(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("keyring serializes");
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let written = (|| -> Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
                .at("create", &tmp)?;
            f.write_all(text.as_bytes()).at("write", &tmp)?;
            f.sync_all().at("sync", &tmp)?;
            std::fs::rename(&tmp, path).at("replace", path)?;
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .at("sync", dir)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// How many slots of each kind: (passphrase, key file).
    pub fn slot_counts(&self) -> (usize, usize) {
        let pass = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Passphrase { .. }))
            .count();
        (pass, self.slots.len() - pass)
    }

    /// Make `pass` the passphrase of the store whose master key is `master`: every passphrase
    /// slot is replaced by one new slot (new salt, current Argon2 cost), key-file slots stay.
    /// The photos are not touched: only the master key is wrapped anew.
    pub fn set_passphrase(&mut self, master: &Key, pass: &str) -> Result<()> {
        if pass.is_empty() {
            return Err(Error::invalid("the new passphrase is empty"));
        }
        let salt = super::random_bytes::<16>();
        let kek = argon2_kek(pass, &salt, ARGON2_M_KIB, ARGON2_T, ARGON2_P)?;
        let slot = Slot::Passphrase {
            m_kib: ARGON2_M_KIB,
            t: ARGON2_T,
            p: ARGON2_P,
            salt: hex::encode(salt),
            wrapped: hex::encode(wrap_key(&kek, &slot_aad("passphrase"), master)?),
            check: None,
        }
        .with_checksum();
        self.slots.retain(|s| !matches!(s, Slot::Passphrase { .. }));
        self.slots.insert(0, slot);
        Ok(())
    }

    /// Remove the passphrase; refused when it is the only way to open the store.
    pub fn remove_passphrase(&mut self) -> Result<()> {
        let (pass, files) = self.slot_counts();
        if pass == 0 {
            return Err(Error::invalid("this store has no passphrase to remove"));
        }
        if files == 0 {
            return Err(Error::invalid(
                "the passphrase is the only way to open this store; add a key file first (`consentfs key-file add FILE`)",
            ));
        }
        self.slots.retain(|s| !matches!(s, Slot::Passphrase { .. }));
        Ok(())
    }

    /// Let the key file whose secret is `secret` open the store whose master key is `master`.
    pub fn add_key_file(&mut self, master: &Key, secret: &Key) -> Result<()> {
        if self.key_file_slots(secret).next().is_some() {
            return Err(Error::invalid(
                "this key file opens the store already; nothing to add",
            ));
        }
        self.slots.push(
            Slot::KeyFile {
                wrapped: hex::encode(wrap_key(secret, &slot_aad("key_file"), master)?),
                check: None,
            }
            .with_checksum(),
        );
        Ok(())
    }

    /// Stop the key file whose secret is `secret` from opening the store; refused when it is
    /// the only way left (or it does not open the store at all).
    pub fn remove_key_file(&mut self, secret: &Key) -> Result<()> {
        let mine: Vec<usize> = self.key_file_slots(secret).collect();
        if mine.is_empty() {
            return Err(Error::WrongKey(
                "that key file does not open this store; nothing to remove".into(),
            ));
        }
        if mine.len() == self.slots.len() {
            return Err(Error::invalid(
                "this key file is the only way to open the store; add a passphrase (`consentfs passphrase change`) or another key file (`consentfs key-file add FILE`) first",
            ));
        }
        let mut i = 0;
        self.slots.retain(|_| {
            let keep = !mine.contains(&i);
            i += 1;
            keep
        });
        Ok(())
    }

    /// The indexes of the key-file slots that `secret` opens.
    fn key_file_slots<'a>(&'a self, secret: &'a Key) -> impl Iterator<Item = usize> + 'a {
        self.slots
            .iter()
            .enumerate()
            .filter_map(move |(i, s)| match s {
                Slot::KeyFile { wrapped, .. } => hex::decode(wrapped)
                    .ok()
                    .and_then(|w| unwrap_key(secret, &slot_aad("key_file"), &w))
                    .map(|_| i),
                _ => None,
            })
    }

    /// The master key, if `unlock` opens one of the slots.
    pub fn unlock(&self, unlock: &Unlock) -> Result<Key> {
        match unlock {
            Unlock::Passphrase(pass) => {
                let (mut any, mut unchecked) = (false, false);
                let mut damaged = Vec::new();
                for (i, slot) in self.slots.iter().enumerate() {
                    if let Slot::Passphrase {
                        m_kib,
                        t,
                        p,
                        salt,
                        wrapped,
                        ..
                    } = slot
                    {
                        any = true;
                        unchecked |= !slot.has_checksum();
                        let (Some(salt), Some(wrapped), None) = (
                            hex::decode(salt).ok(),
                            hex::decode(wrapped).ok(),
                            slot.damage(),
                        ) else {
                            damaged.push((i + 1, slot.damage().unwrap_or("it does not decode")));
                            continue;
                        };
                        let kek = argon2_kek(pass, &salt, *m_kib, *t, *p)?;
                        if let Some(master) = unwrap_key(&kek, &slot_aad("passphrase"), &wrapped) {
                            return Ok(master);
                        }
                    }
                }
                if !any {
                    return Err(Error::WrongKey(
                        "this store has no passphrase; open it with --key-file".into(),
                    ));
                }
                Err(not_opened(
                    &damaged,
                    "passphrase",
                    "the passphrase does not open this store; check --passphrase-file".into(),
                    unchecked,
                ))
            }
            Unlock::KeyFile(path) => {
                let secret = read_key_file(path)?;
                let (mut any, mut unchecked) = (false, false);
                let mut damaged = Vec::new();
                for (i, slot) in self.slots.iter().enumerate() {
                    if let Slot::KeyFile { wrapped, .. } = slot {
                        any = true;
                        unchecked |= !slot.has_checksum();
                        let (Some(wrapped), None) = (hex::decode(wrapped).ok(), slot.damage())
                        else {
                            damaged.push((i + 1, slot.damage().unwrap_or("it does not decode")));
                            continue;
                        };
                        if let Some(master) = unwrap_key(&secret, &slot_aad("key_file"), &wrapped) {
                            return Ok(master);
                        }
                    }
                }
                if !any {
                    return Err(Error::WrongKey(
                        "this store has no key file; open it with --passphrase-file or at the prompt"
                            .into(),
                    ));
                }
                Err(not_opened(
                    &damaged,
                    "key file",
                    format!("{} is not the key file of this store", path.display()),
                    unchecked,
                ))
            }
        }
    }
}

/// Create a new key file holding a fresh random secret, readable by the owner only.
pub fn create_key_file(path: &Path) -> Result<Key> {
    let secret = Key::random();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::invalid(format!(
                    "key file {} already exists; refusing to overwrite a key (choose another path)",
                    path.display()
                ))
            } else {
                Error::io_path("create key file", path, e)
            }
        })?;
    let text = Zeroizing::new(format!("{KEYFILE_PREFIX}{}\n", hex::encode(secret.bytes())));
    f.write_all(text.as_bytes()).at("write key file", path)?;
    f.sync_all().at("sync key file", path)?;
    Ok(secret)
}

pub fn read_key_file(path: &Path) -> Result<Key> {
    let text = Zeroizing::new(std::fs::read_to_string(path).at("read key file", path)?);
    let hexpart = text
        .trim()
        .strip_prefix(KEYFILE_PREFIX.trim_end())
        .map(str::trim)
        .ok_or_else(|| {
            Error::WrongKey(format!("{} is not a consentfs key file", path.display()))
        })?;
    let bytes =
        Zeroizing::new(hex::decode(hexpart).map_err(|_| {
            Error::WrongKey(format!("{} is not a consentfs key file", path.display()))
        })?);
    Key::from_slice(&bytes)
        .ok_or_else(|| Error::WrongKey(format!("{} is not a consentfs key file", path.display())))
}

/// Read a passphrase from a file: its first line, without the line ending.
pub fn read_passphrase_file(path: &Path) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(std::fs::read_to_string(path).at("read passphrase file", path)?);
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(Error::invalid(format!(
            "passphrase file {} is empty",
            path.display()
        )));
    }
    Ok(Zeroizing::new(line.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_and_passphrase_both_unlock_and_wrong_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let kf = dir.path().join("k");
        let secret = create_key_file(&kf).unwrap();
        let master = Key::random();
        let ring = Keyring::create(&master, Some("correct horse"), Some(&secret)).unwrap();
        let m1 = ring.unlock(&Unlock::KeyFile(kf.clone())).unwrap();
        assert_eq!(m1.bytes(), master.bytes());
        let m2 = ring
            .unlock(&Unlock::Passphrase(Zeroizing::new("correct horse".into())))
            .unwrap();
        assert_eq!(m2.bytes(), master.bytes());
        let bad = ring.unlock(&Unlock::Passphrase(Zeroizing::new("wrong".into())));
        assert!(matches!(bad, Err(Error::WrongKey(_))));
        let other = dir.path().join("other");
        create_key_file(&other).unwrap();
        assert!(matches!(
            ring.unlock(&Unlock::KeyFile(other)),
            Err(Error::WrongKey(_))
        ));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&kf).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn rewrapping_keeps_the_master_key_and_never_removes_the_last_way_in() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, k2) = (dir.path().join("k1"), dir.path().join("k2"));
        let (s1, s2) = (create_key_file(&k1).unwrap(), create_key_file(&k2).unwrap());
        let master = Key::random();
        let pass = |p: &str| Unlock::Passphrase(Zeroizing::new(p.into()));
        let mut ring = Keyring::create(&master, Some("old"), Some(&s1)).unwrap();
        ring.set_passphrase(&master, "new").unwrap();
        assert_eq!(ring.slot_counts(), (1, 1));
        assert!(matches!(ring.unlock(&pass("old")), Err(Error::WrongKey(_))));
        assert_eq!(ring.unlock(&pass("new")).unwrap().bytes(), master.bytes());
        ring.add_key_file(&master, &s2).unwrap();
        assert!(ring.add_key_file(&master, &s2).is_err());
        ring.remove_key_file(&s1).unwrap();
        assert!(matches!(
            ring.unlock(&Unlock::KeyFile(k1)),
            Err(Error::WrongKey(_))
        ));
        ring.remove_passphrase().unwrap();
        assert_eq!(ring.slot_counts(), (0, 1));
        assert!(ring.remove_key_file(&s2).is_err());
        assert_eq!(
            ring.unlock(&Unlock::KeyFile(k2)).unwrap().bytes(),
            master.bytes()
        );
        // written over the old file and read back, the slots carry their checksums
        let path = dir.path().join("keyring");
        ring.save_new(&path).unwrap();
        ring.set_passphrase(&master, "again").unwrap();
        ring.save_replace(&path).unwrap();
        let back = Keyring::load(&path).unwrap();
        assert_eq!(back.unlock(&pass("again")).unwrap().bytes(), master.bytes());
        assert!(back
            .slots
            .iter()
            .all(|s| s.has_checksum() && s.damage().is_none()));
    }

    /// Change one hex digit of a slot's wrapped key to another hex digit.
    fn flip(ring: &mut Keyring, index: usize) {
        let (Slot::Passphrase { wrapped, .. } | Slot::KeyFile { wrapped, .. }) =
            &mut ring.slots[index];
        let mut w: Vec<u8> = wrapped.bytes().collect();
        w[50] = if w[50] == b'0' { b'1' } else { b'0' };
        *wrapped = String::from_utf8(w).unwrap();
    }

    #[test]
    fn a_damaged_slot_is_named_and_not_taken_for_a_wrong_key() {
        let dir = tempfile::tempdir().unwrap();
        let kf = dir.path().join("k");
        let secret = create_key_file(&kf).unwrap();
        let master = Key::random();
        let pass = || Unlock::Passphrase(Zeroizing::new("correct horse".into()));
        let mut ring = Keyring::create(&master, Some("correct horse"), Some(&secret)).unwrap();
        // written and read back, the checksums survive
        let text = serde_json::to_string(&ring).unwrap();
        assert!(text.contains("\"check\""));
        flip(&mut ring, 1);
        match ring.unlock(&Unlock::KeyFile(kf.clone())) {
            Err(Error::Integrity { what, detail }) => {
                assert_eq!(what, "keyring");
                assert!(detail.contains("slot 2 (key file)"), "{detail}");
                assert!(detail.contains("checksum"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // the intact passphrase slot still opens the store
        assert_eq!(ring.unlock(&pass()).unwrap().bytes(), master.bytes());
        // a salt that no longer decodes is damage too
        if let Slot::Passphrase { salt, .. } = &mut ring.slots[0] {
            salt.replace_range(0..1, "z");
        }
        assert!(matches!(ring.unlock(&pass()), Err(Error::Integrity { .. })));
    }

    #[test]
    fn a_keyring_without_checksums_still_opens_and_cannot_tell_damage_from_a_wrong_key() {
        let dir = tempfile::tempdir().unwrap();
        let kf = dir.path().join("k");
        let secret = create_key_file(&kf).unwrap();
        let master = Key::random();
        // as an older consentfs wrote it
        let old = format!(
            r#"{{"format":"consentfs-keyring","version":1,"slots":[{{"kind":"key_file","wrapped":"{}"}}]}}"#,
            hex::encode(wrap_key(&secret, &slot_aad("key_file"), &master).unwrap())
        );
        let mut ring: Keyring = serde_json::from_str(&old).unwrap();
        assert_eq!(
            ring.unlock(&Unlock::KeyFile(kf.clone())).unwrap().bytes(),
            master.bytes()
        );
        flip(&mut ring, 0);
        match ring.unlock(&Unlock::KeyFile(kf)) {
            Err(Error::WrongKey(m)) => assert!(m.contains("cannot be told apart"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
