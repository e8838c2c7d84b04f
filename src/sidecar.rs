//! Which photo an XMP sidecar belongs to, by name. Photographers deliver `IMG_0042.CR2` with
//! `IMG_0042.CR2.xmp` (darktable, digiKam) or `IMG_0042.xmp` (Lightroom, Capture One) beside
//! it; the sidecar holds the photo's face regions, names and place, so it is the photo's and
//! shows only where the photo shows (see `catalog::assets::attach`). Only names are compared
//! here; the caller looks in the sidecar's own folder.

use crate::policy::AssetId;

/// Raw and camera formats whose edits live in sidecars, preferred when `IMG_0042.xmp` could
/// belong to more than one file (a raw and the JPEG the camera wrote beside it).
const RAW: &[&str] = &[
    "cr2", "cr3", "crw", "nef", "nrw", "arw", "srf", "sr2", "dng", "raf", "orf", "rw2", "pef",
    "srw", "x3f", "3fr", "iiq", "erf", "mrw", "rwl", "heic", "heif",
];

/// True for a name that ends in `.xmp` (any case) after a non-empty stem.
pub fn is_sidecar(name: &str) -> bool {
    stem(name).is_some()
}

/// The name without its `.xmp`: `IMG_0042.CR2` for `IMG_0042.CR2.xmp`, `IMG_0042` for
/// `IMG_0042.xmp`. `None` for other names.
pub fn stem(name: &str) -> Option<&str> {
    let cut = name.len().checked_sub(4)?;
    let (stem, ext) = (name.get(..cut)?, name.get(cut..)?);
    (ext.eq_ignore_ascii_case(".xmp") && !stem.is_empty() && !stem.ends_with('.')).then_some(stem)
}

fn extension(name: &str) -> Option<&str> {
    name.rsplit_once('.').map(|(_, e)| e)
}

/// Of `found` (id, name) in the sidecar's folder, the photo a sidecar with `stem` belongs to:
/// the file named `stem` itself, else one named `stem.EXT` (EXT without dots, not a sidecar),
/// a raw format first, then the oldest.
pub fn choose_photo(stem: &str, found: &[(AssetId, String)]) -> Option<AssetId> {
    if let Some((id, _)) = found.iter().find(|(_, n)| n == stem) {
        return Some(*id);
    }
    let candidates = found.iter().filter(|(_, n)| {
        n.strip_prefix(stem)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|ext| !ext.is_empty() && !ext.contains('.'))
            && !is_sidecar(n)
    });
    let raw = |n: &str| extension(n).is_some_and(|e| RAW.iter().any(|r| r.eq_ignore_ascii_case(e)));
    candidates
        .min_by_key(|(id, n)| (!raw(n), *id))
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(names: &[(AssetId, &str)]) -> Vec<(AssetId, String)> {
        names.iter().map(|(i, n)| (*i, n.to_string())).collect()
    }

    #[test]
    fn sidecar_names() {
        assert_eq!(stem("IMG_0042.CR2.xmp"), Some("IMG_0042.CR2"));
        assert_eq!(stem("IMG_0042.XMP"), Some("IMG_0042"));
        assert_eq!(stem(".xmp"), None);
        assert_eq!(stem("a..xmp"), None);
        assert_eq!(stem("xmp"), None);
        assert_eq!(stem("photo.jpg"), None);
        assert_eq!(stem("éé.xmp"), Some("éé"));
        // a multi-byte character where the cut would fall is no sidecar, and no panic
        assert_eq!(stem("aé"), None);
        assert!(!is_sidecar("notes.xmpx"));
    }

    #[test]
    fn the_named_file_first_then_a_raw_then_the_oldest() {
        let f = found(&[(1, "IMG.jpg"), (2, "IMG.CR2"), (3, "IMG.CR2.jpg")]);
        assert_eq!(choose_photo("IMG.CR2", &f), Some(2));
        assert_eq!(choose_photo("IMG", &f), Some(2));
        let f = found(&[(5, "IMG.tif"), (4, "IMG.jpg")]);
        assert_eq!(choose_photo("IMG", &f), Some(4));
    }

    #[test]
    fn other_files_are_not_the_photo() {
        // another sidecar, a longer name, a name with two extensions
        let f = found(&[
            (1, "IMG.xmp"),
            (2, "IMG_2.jpg"),
            (3, "IMG.a.jpg"),
            (4, "IMG."),
        ]);
        assert_eq!(choose_photo("IMG", &f), None);
    }
}
