//! XChaCha20-Poly1305 on OpenSSL's assembly ChaCha20-Poly1305 (contrib/FORMAT.md, "Cipher").
//!
//! The format has always been XChaCha20-Poly1305 with a random 24-byte nonce per chunk; only its
//! implementation lives here. RustCrypto's portable `chacha20poly1305` ran at about a third of
//! the speed OpenSSL's AVX2/AVX-512 code reaches on the same core (`contrib/bench/aead.sh`), and
//! the cipher is the most expensive thing a read or a write through the mount does. OpenSSL is
//! already linked in, vendored, for SQLCipher, so this costs no second copy.
//!
//! XChaCha20-Poly1305 is built the standard way (draft-irtf-cfrg-xchacha): the subkey is
//! HChaCha20(key, nonce[0..16]) and the chunk is sealed with IETF ChaCha20-Poly1305 (RFC 8439)
//! under that subkey with the 12-byte nonce 0x00000000 ‖ nonce[16..24]. HChaCha20 comes from
//! RustCrypto's `chacha20` crate (one block function, about 1% of a 64 KiB chunk's cost); the
//! bulk cipher and Poly1305 from OpenSSL. The unit tests and `tests/` check the result against
//! RustCrypto's `XChaCha20Poly1305` both ways, and a store sealed by it still opens.
//!
//! Everything works in place on caller buffers, and each thread keeps one OpenSSL context per
//! direction, so sealing or opening a chunk allocates nothing.

use super::{Key, NONCE_LEN, TAG_LEN};
use chacha20::cipher::consts::U10;
use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use std::cell::RefCell;
use zeroize::Zeroizing;

/// Authentication failed: wrong key, wrong associated data, or the data or tag were changed.
/// (Also returned in the practically impossible case of OpenSSL failing to allocate: a chunk
/// that cannot be processed is never returned as if it were fine.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AeadError;

impl std::fmt::Display for AeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XChaCha20-Poly1305 authentication failed")
    }
}

impl std::error::Error for AeadError {}

/// The HChaCha20 subkey and the IETF nonce for one XChaCha20 nonce.
fn subkey(key: &Key, nonce: &[u8; NONCE_LEN]) -> (Zeroizing<[u8; 32]>, [u8; 12]) {
    let mut hnonce = [0u8; 16];
    hnonce.copy_from_slice(&nonce[..16]);
    let mut sub = chacha20::hchacha::<U10>(key.bytes().into(), &hnonce.into());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&sub);
    zeroize::Zeroize::zeroize(sub.as_mut_slice());
    let mut iv = [0u8; 12];
    iv[4..].copy_from_slice(&nonce[16..]);
    (out, iv)
}

thread_local! {
    /// One context per direction and thread, re-keyed for every chunk: creating an
    /// `EVP_CIPHER_CTX` and fetching the cipher for each 64 KiB chunk would cost an allocation
    /// and a provider lookup each time.
    static SEAL_CTX: RefCell<Option<CipherCtx>> = const { RefCell::new(None) };
    static OPEN_CTX: RefCell<Option<CipherCtx>> = const { RefCell::new(None) };
}

fn new_ctx(seal: bool) -> Result<CipherCtx, AeadError> {
    let mut ctx = CipherCtx::new().map_err(|_| AeadError)?;
    let cipher = Cipher::chacha20_poly1305();
    if seal {
        ctx.encrypt_init(Some(cipher), None, None)
    } else {
        ctx.decrypt_init(Some(cipher), None, None)
    }
    .map_err(|_| AeadError)?;
    Ok(ctx)
}

/// Run `f` with this thread's context for sealing (`seal`) or opening, created on first use
/// with the cipher set; `f` sets key and IV. When the thread's context is unavailable (the
/// thread is exiting, or a caller of `f` re-entered, which nothing here does) a fresh one is
/// used, so this never fails for that reason.
fn with_ctx<T>(
    seal: bool,
    f: impl FnOnce(&mut CipherCtx) -> Result<T, AeadError>,
) -> Result<T, AeadError> {
    let slot = if seal { &SEAL_CTX } else { &OPEN_CTX };
    let mut f = Some(f);
    let done = slot.try_with(|cell| -> Option<Result<T, AeadError>> {
        let mut guard = cell.try_borrow_mut().ok()?;
        if guard.is_none() {
            match new_ctx(seal) {
                Ok(ctx) => *guard = Some(ctx),
                Err(e) => return Some(Err(e)),
            }
        }
        let ctx = guard.as_mut()?;
        let f = f.take()?;
        Some(f(ctx))
    });
    if let Ok(Some(r)) = done {
        return r;
    }
    let f = f.take().ok_or(AeadError)?;
    f(&mut new_ctx(seal)?)
}

/// OpenSSL takes lengths as C ints.
fn check_lens(aad: &[u8], data: &[u8]) -> Result<(), AeadError> {
    let max = i32::MAX as usize;
    if aad.len() > max || data.len() > max {
        return Err(AeadError);
    }
    Ok(())
}

/// Encrypt `buf` in place with XChaCha20-Poly1305 and return the tag.
pub fn seal_in_place(
    key: &Key,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], AeadError> {
    check_lens(aad, buf)?;
    let (sub, iv) = subkey(key, nonce);
    with_ctx(true, |ctx| {
        ctx.encrypt_init(None, Some(&sub[..]), Some(&iv))
            .map_err(|_| AeadError)?;
        ctx.cipher_update(aad, None).map_err(|_| AeadError)?;
        let len = buf.len();
        ctx.cipher_update_inplace(buf, len).map_err(|_| AeadError)?;
        ctx.cipher_final(&mut []).map_err(|_| AeadError)?;
        let mut tag = [0u8; TAG_LEN];
        ctx.tag(&mut tag).map_err(|_| AeadError)?;
        Ok(tag)
    })
}

/// Authenticate and decrypt `buf` in place. On failure `buf` is zeroed: no unauthenticated
/// plaintext is ever left for a caller to use by mistake.
pub fn open_in_place(
    key: &Key,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), AeadError> {
    check_lens(aad, buf)?;
    let (sub, iv) = subkey(key, nonce);
    let r = with_ctx(false, |ctx| {
        ctx.decrypt_init(None, Some(&sub[..]), Some(&iv))
            .map_err(|_| AeadError)?;
        ctx.set_tag(tag).map_err(|_| AeadError)?;
        ctx.cipher_update(aad, None).map_err(|_| AeadError)?;
        let len = buf.len();
        ctx.cipher_update_inplace(buf, len).map_err(|_| AeadError)?;
        ctx.cipher_final(&mut []).map_err(|_| AeadError)?;
        Ok(())
    });
    if r.is_err() {
        zeroize::Zeroize::zeroize(buf);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    use proptest::prelude::*;

    /// The reference: RustCrypto's XChaCha20-Poly1305, which sealed every object before.
    fn reference(key: &Key) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(key.bytes().into())
    }

    fn chunk_aad(index: u64, last: bool, extra: &[u8]) -> Vec<u8> {
        let mut a = extra.to_vec();
        a.extend_from_slice(&index.to_be_bytes());
        a.push(last as u8);
        a
    }

    proptest! {
        #![proptest_config(crate::proptest_config(96))]

        /// Sealed by either implementation, opened by the other, for sizes from empty to past
        /// one chunk, any associated data and chunk index; and a change to the ciphertext, the
        /// tag, the nonce or the associated data is refused by both.
        #[test]
        fn openssl_and_rustcrypto_agree_both_ways(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; NONCE_LEN]>(),
            len in prop_oneof![0usize..=64, 65_530usize..=65_600, 0usize..=(64 * 1024 + 100)],
            seed in any::<u64>(),
            extra in proptest::collection::vec(any::<u8>(), 0..80),
            index in any::<u64>(),
            last in any::<bool>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let key = Key::from_slice(&key).unwrap();
            let aad = chunk_aad(index, last, &extra);
            let plain: Vec<u8> = (0..len)
                .map(|i| (seed.wrapping_mul(i as u64 + 1) >> 13) as u8)
                .collect();
            let xn = XNonce::from_slice(&nonce);

            // OpenSSL seals, RustCrypto opens
            let mut ours = plain.clone();
            let tag = seal_in_place(&key, &nonce, &aad, &mut ours).unwrap();
            let mut theirs = plain.clone();
            let rtag = reference(&key).encrypt_in_place_detached(xn, &aad, &mut theirs).unwrap();
            // same key and nonce: both produce the same bytes, so the format is unchanged
            prop_assert_eq!(&ours, &theirs);
            prop_assert_eq!(&tag[..], &rtag[..]);
            let mut back = ours.clone();
            reference(&key)
                .decrypt_in_place_detached(xn, &aad, &mut back, &tag.into())
                .unwrap();
            prop_assert_eq!(&back, &plain);

            // RustCrypto seals, OpenSSL opens
            let mut back = theirs.clone();
            open_in_place(&key, &nonce, &aad, &mut back, &rtag.into()).unwrap();
            prop_assert_eq!(&back, &plain);

            // tampering: one bit of ciphertext+tag, of the nonce, of the associated data
            let mut sealed = ours.clone();
            sealed.extend_from_slice(&tag);
            let at = flip.index(sealed.len());
            sealed[at] ^= 1 << bit;
            let (ct, t) = sealed.split_at(len);
            let t: [u8; TAG_LEN] = t.try_into().unwrap();
            let mut a = ct.to_vec();
            prop_assert!(open_in_place(&key, &nonce, &aad, &mut a, &t).is_err());
            prop_assert!(a.iter().all(|b| *b == 0), "plaintext left after a failure");
            let mut b = ct.to_vec();
            prop_assert!(reference(&key)
                .decrypt_in_place_detached(xn, &aad, &mut b, &t.into())
                .is_err());

            let mut n2 = nonce;
            n2[flip.index(NONCE_LEN)] ^= 1 << bit;
            let mut a = ours.clone();
            prop_assert!(open_in_place(&key, &n2, &aad, &mut a, &tag).is_err());
            let mut b = ours.clone();
            prop_assert!(reference(&key)
                .decrypt_in_place_detached(XNonce::from_slice(&n2), &aad, &mut b, &tag.into())
                .is_err());

            let mut aad2 = aad.clone();
            let at = flip.index(aad2.len());
            aad2[at] ^= 1 << bit;
            let mut a = ours.clone();
            prop_assert!(open_in_place(&key, &nonce, &aad2, &mut a, &tag).is_err());
            let mut b = ours.clone();
            prop_assert!(reference(&key)
                .decrypt_in_place_detached(xn, &aad2, &mut b, &tag.into())
                .is_err());

            // and the thread's context still works after the failures
            let mut again = ours.clone();
            open_in_place(&key, &nonce, &aad, &mut again, &tag).unwrap();
            prop_assert_eq!(&again, &plain);
        }
    }

    /// The test vector of draft-irtf-cfrg-xchacha-03, appendix A.3.1: the construction is the
    /// standard XChaCha20-Poly1305, not merely one that agrees with itself.
    #[test]
    fn matches_the_xchacha_draft_test_vector() {
        let key = Key::from_slice(
            &hex::decode("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
                .unwrap(),
        )
        .unwrap();
        let nonce: [u8; NONCE_LEN] =
            hex::decode("404142434445464748494a4b4c4d4e4f5051525354555657")
                .unwrap()
                .try_into()
                .unwrap();
        let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let mut buf = plain.to_vec();
        let tag = seal_in_place(&key, &nonce, &aad, &mut buf).unwrap();
        assert_eq!(
            hex::encode(&buf),
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb\
             731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452\
             2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9\
             21f9664c97637da9768812f615c68b13b52e"
        );
        assert_eq!(hex::encode(tag), "c0875924c1c7987947deafd8780acf49");
        open_in_place(&key, &nonce, &aad, &mut buf, &tag).unwrap();
        assert_eq!(&buf[..], &plain[..]);
    }

    #[test]
    fn contexts_work_on_many_threads_at_once() {
        let key = Key::random();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let key = &key;
                s.spawn(move || {
                    for i in 0..50u64 {
                        let nonce = [t; NONCE_LEN];
                        let mut buf = vec![t ^ i as u8; 1000 + i as usize];
                        let want = buf.clone();
                        let tag = seal_in_place(key, &nonce, &i.to_be_bytes(), &mut buf).unwrap();
                        open_in_place(key, &nonce, &i.to_be_bytes(), &mut buf, &tag).unwrap();
                        assert_eq!(buf, want);
                    }
                });
            }
        });
    }
}
