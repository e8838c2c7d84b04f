//! Keys, key wrapping and the chunked object format (contrib/FORMAT.md).
//!
//! Primitives come from libraries, this module only composes them: XChaCha20-Poly1305 from
//! OpenSSL's ChaCha20-Poly1305 with RustCrypto's HChaCha20 ([`aead`]), HKDF-SHA256,
//! HMAC-SHA256 and Argon2id from RustCrypto. Secret keys live in [`Key`], which zeroizes its
//! bytes on drop.

pub mod aead;
pub mod keyring;
pub mod object;
pub mod sha;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;

/// A 256-bit secret key, wiped from memory when dropped.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn random() -> Key {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        Key(k)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Key> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return None;
        }
        k.copy_from_slice(bytes);
        Some(Key(k))
    }

    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A subkey for one use, so that the master key itself never keys two different things
    /// (catalog, data-key wrapping, content hashes, audit chain, manifests).
    pub fn derive(&self, label: &str) -> Key {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"consentfs v1"), self.bytes());
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        // 32 bytes is far below HKDF-SHA256's limit of 255*32, so this cannot fail.
        hk.expand(label.as_bytes(), k.as_mut())
            .expect("HKDF output length is valid");
        Key(k)
    }

    /// HMAC-SHA256 of `data` under this key.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut m = self.mac_state();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    pub fn mac_state(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(self.bytes()).expect("HMAC takes any key length")
    }

    /// The same HMAC-SHA256 as [`Key::mac_state`], computed with OpenSSL's SHA-256: for the
    /// content hash, which runs over every byte written (see [`sha`]).
    pub fn fast_mac_state(&self) -> sha::HmacSha256 {
        <sha::HmacSha256 as Mac>::new_from_slice(self.bytes()).expect("HMAC takes any key length")
    }
}

/// Fresh random bytes (nonces, salts, ids).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Encrypt and authenticate `plaintext` with a fresh random nonce: `nonce || ciphertext+tag`.
/// Fails only if OpenSSL cannot set up its cipher context (out of memory).
pub fn seal(key: &Key, aad: &[u8], plaintext: &[u8]) -> crate::error::Result<Vec<u8>> {
    let nonce = random_bytes::<NONCE_LEN>();
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = aead::seal_in_place(key, &nonce, aad, &mut out[NONCE_LEN..]).map_err(|_| {
        crate::error::Error::io(
            "cannot encrypt",
            std::io::Error::other("the cipher (OpenSSL) failed to initialise"),
        )
    })?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Reverse of [`seal`]; `None` when the data or the associated data were tampered with, or the
/// key is wrong.
pub fn open(key: &Key, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plain = Zeroizing::new(ct.to_vec());
    aead::open_in_place(
        key,
        nonce.try_into().ok()?,
        aad,
        &mut plain,
        tag.try_into().ok()?,
    )
    .ok()?;
    Some(plain)
}

/// Wrap a key under a key-encryption key, binding it to `aad` (e.g. the object id).
pub fn wrap_key(kek: &Key, aad: &[u8], key: &Key) -> crate::error::Result<Vec<u8>> {
    seal(kek, aad, key.bytes())
}

pub fn unwrap_key(kek: &Key, aad: &[u8], wrapped: &[u8]) -> Option<Key> {
    open(kek, aad, wrapped).and_then(|k| Key::from_slice(&k))
}

/// Labels of the subkeys derived from the master key. Changing one breaks existing stores.
pub mod labels {
    pub const CATALOG: &str = "catalog.db sqlcipher key";
    pub const DATA_KEY_WRAP: &str = "object data key wrapping";
    pub const CONTENT_HASH: &str = "content hash for duplicate detection";
    pub const AUDIT: &str = "audit log hash chain";
    pub const MANIFEST: &str = "export manifest mac";
    pub const STORE_ID: &str = "store id for the rollback anchor";
    pub const SAVE_QUEUE: &str = "queue of saves waiting for the catalog";
    pub const TEAM_LOG: &str = "team library change log";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_same_key_and_aad() {
        let k = Key::random();
        let s = seal(&k, b"aad", b"secret photo").unwrap();
        assert_eq!(&open(&k, b"aad", &s).unwrap()[..], b"secret photo");
        assert!(open(&k, b"other", &s).is_none());
        assert!(open(&Key::random(), b"aad", &s).is_none());
        let mut t = s.clone();
        t[30] ^= 1;
        assert!(open(&k, b"aad", &t).is_none());
    }

    #[test]
    fn derived_keys_differ_per_label_and_are_stable() {
        let k = Key::random();
        assert_ne!(k.derive("a").bytes(), k.derive("b").bytes());
        assert_eq!(k.derive("a").bytes(), k.derive("a").bytes());
        assert_ne!(k.derive("a").bytes(), k.bytes());
    }
}
