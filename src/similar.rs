//! Near-duplicates (DESIGN.md section 14): a perceptual hash of what an image looks like, so
//! that a crop, a resize or a re-export of a photo already in the store is recognised and
//! takes that photo's persons (as a suggestion for the reviewer, `consentfs review`).
//!
//! The hash is the `image_hasher` crate's DCT mean hash (pHash) of 64 bits over the image
//! decoded at reduced scale; two images are near-duplicates within [`NEAR`] bits.

/// The most differing bits for two images to count as the same picture.
pub const NEAR: u32 = 10;

/// Below this spread of brightness (standard deviation, 0..255) an image has no detail to
/// recognise: a blank or single-colour picture would "look like" every other blank one.
const FLAT: f64 = 4.0;

/// The perceptual hash of an RGB image (`rgb` is `width * height * 3` bytes); `None` for an
/// image without detail (see [`FLAT`]).
pub fn fingerprint(rgb: &[u8], width: u32, height: u32) -> Option<u64> {
    let luma: Vec<f64> = rgb
        .chunks_exact(3)
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect();
    let n = luma.len().max(1) as f64;
    let mean = luma.iter().sum::<f64>() / n;
    let var = luma.iter().map(|l| (l - mean) * (l - mean)).sum::<f64>() / n;
    if var.sqrt() < FLAT {
        return None;
    }
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

/// Of `known` (asset, hash) pairs, the asset other than `asset` whose hash is nearest to
/// `hash`, if within [`NEAR`] bits (the lowest id among equally near ones).
pub fn nearest(known: &[(i64, u64)], asset: i64, hash: u64) -> Option<i64> {
    known
        .iter()
        .filter(|(a, _)| *a != asset)
        .map(|(a, h)| ((h ^ hash).count_ones(), *a))
        .filter(|(d, _)| *d <= NEAR)
        .min()
        .map(|(_, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_without_detail_has_no_hash_and_a_gradient_has_one() {
        let flat = vec![128u8; 32 * 32 * 3];
        assert_eq!(fingerprint(&flat, 32, 32), None);
        let ramp: Vec<u8> = (0..32 * 32)
            .flat_map(|i| {
                let v = ((i % 32) * 8) as u8;
                [v, v, v]
            })
            .collect();
        assert!(fingerprint(&ramp, 32, 32).is_some());
        assert_eq!(fingerprint(&ramp, 33, 32), None, "a wrong size is no image");
    }
}
