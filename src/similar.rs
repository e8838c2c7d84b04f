//! Near-duplicates (DESIGN.md section 14): a perceptual hash of what an image looks like, so
//! that a crop, a resize or a re-export of a photo already in the store is recognised and
//! takes that photo's persons (as a suggestion for the reviewer, `consentfs review`).
//!
//! The hash is the `image_hasher` crate's DCT mean hash (pHash) of 64 bits over the image
//! decoded at reduced scale; two images are near-duplicates within [`NEAR`] bits.

/// The most differing bits for two images to count as the same picture.
pub const NEAR: u32 = 10;

/// The perceptual hash of an RGB image (`rgb` is `width * height * 3` bytes).
pub fn fingerprint(rgb: &[u8], width: u32, height: u32) -> Option<u64> {
    let img = image::RgbImage::from_raw(width, height, rgb.to_vec())?;
    let hasher = image_hasher::HasherConfig::new()
        .hash_size(8, 8)
        .preproc_dct()
        .hash_alg(image_hasher::HashAlg::Mean)
        .to_hasher();
    let h = hasher.hash_image(&image::DynamicImage::ImageRgb8(img));
    let bytes: [u8; 8] = h.as_bytes().try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}
