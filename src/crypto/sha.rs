//! SHA-256 by OpenSSL's assembly, for the keyed content hash of everything written.
//!
//! The content hash (HMAC-SHA256 over a file's bytes, see `store::hash`) runs over every byte a
//! tool saves, on one core, and it was the longest step of a large save: RustCrypto's `sha2`
//! hashed at about 1.1 GB/s here, OpenSSL's SHA-256 (with the CPU's SHA extensions) at about
//! 1.8 GB/s. The HMAC construction stays the `hmac` crate's; only the compression function
//! underneath is OpenSSL's, so the result is the same HMAC-SHA256 bit for bit (a test compares
//! it with RustCrypto's on random keys and lengths).

use hmac::digest::consts::{U32, U64};
use hmac::digest::{
    core_api::BlockSizeUser, FixedOutput, HashMarker, Output, OutputSizeUser, Update,
};

/// SHA-256 computed by OpenSSL, usable wherever the `digest` traits are expected.
#[derive(Clone, Default)]
pub struct Sha256(openssl::sha::Sha256);

impl HashMarker for Sha256 {}

impl BlockSizeUser for Sha256 {
    type BlockSize = U64;
}

impl OutputSizeUser for Sha256 {
    type OutputSize = U32;
}

impl Update for Sha256 {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

impl FixedOutput for Sha256 {
    fn finalize_into(self, out: &mut Output<Self>) {
        out.copy_from_slice(&self.0.finish());
    }
}

/// HMAC-SHA256 with OpenSSL's SHA-256 underneath.
pub type HmacSha256 = hmac::SimpleHmac<Sha256>;

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(crate::proptest_config(64))]
        /// Bit for bit the HMAC-SHA256 of RustCrypto's `hmac` + `sha2`, for any key, any
        /// bytes, fed in any pieces.
        #[test]
        fn is_rustcrypto_hmac_sha256(
            key in proptest::collection::vec(any::<u8>(), 0..100),
            data in proptest::collection::vec(any::<u8>(), 0..70_000),
            piece in 1usize..5000,
        ) {
            let mut ours = <HmacSha256 as Mac>::new_from_slice(&key).unwrap();
            for p in data.chunks(piece) {
                Mac::update(&mut ours, p);
            }
            let mut reference = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
            Mac::update(&mut reference, &data);
            prop_assert_eq!(
                ours.finalize().into_bytes().to_vec(),
                reference.finalize().into_bytes().to_vec()
            );
        }
    }

    #[test]
    fn plain_sha256_matches_the_known_answer() {
        use hmac::digest::Digest;
        // FIPS 180-2, "abc"
        assert_eq!(
            hex::encode(<Sha256 as Digest>::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
