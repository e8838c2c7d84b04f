//! Renditions for the web (DESIGN.md section 15): a photo made smaller, upright, visibly
//! watermarked, and encoded as a new JPEG that carries no metadata at all (no EXIF, no XMP,
//! no GPS, no face regions: the encoder writes pixels and nothing else). The consent page's
//! previews and `export --max-size --watermark` both come from here, so what a parent sees and
//! what a web export holds are made the same way.
//!
//! The watermark is drawn with the public-domain 8x8 bitmap font of the `font8x8` crate,
//! scaled with the picture, so no font file needs to be installed and nothing is fetched.

use crate::error::{Error, Result};
use crate::faces::decode::{self, Rgb};

/// The long side of a consent-page preview, at most.
pub const PREVIEW_LONG: usize = 1024;
/// The longest side a rendition may be asked for (`export --max-size`).
pub const MAX_LONG: usize = 8192;
/// The largest photo a rendition is made from (it is decoded in memory).
pub const MAX_SOURCE_BYTES: u64 = 256 << 20;
/// The longest watermark text (longer is cut): one line across a photo.
pub const MAX_WATERMARK: usize = 80;

/// `image` (JPEG, PNG, or a raw file's preview) upright, at most `long` pixels on its long
/// side (never enlarged), with `watermark` written across it when given, as JPEG bytes.
pub fn render(image: &[u8], long: usize, watermark: Option<&str>) -> Result<Vec<u8>> {
    if long == 0 || long > MAX_LONG {
        return Err(Error::invalid(format!(
            "a rendition's long side is 1 to {MAX_LONG} pixels, not {long}"
        )));
    }
    let mut img = decode::fit(decode::decode(image, long)?, long);
    if let Some(text) = watermark.filter(|t| !t.trim().is_empty()) {
        watermark_on(&mut img, text);
    }
    decode::encode(&img, 85)
}

/// The glyph of `c` (8 rows, bit 0 the leftmost pixel); `?` for what the font lacks.
fn glyph(c: char) -> [u8; 8] {
    let table = &font8x8::legacy::BASIC_LEGACY;
    let i = if c.is_ascii() && !c.is_ascii_control() {
        c as usize
    } else {
        '?' as usize
    };
    table[i]
}

/// Write `text` in rows across the whole picture, offset row by row, light letters with a dark
/// edge blended half into the photo: readable on any background, impossible to crop away
/// without losing most of the picture.
pub fn watermark_on(img: &mut Rgb, text: &str) {
    let text: String = text.trim().chars().take(MAX_WATERMARK).collect();
    let long = img.width.max(img.height);
    let scale = (long / 256).max(1);
    let glyph_px = 8 * scale;
    let line = format!("{text}   ");
    let line_w = line.chars().count() * glyph_px;
    if line_w == 0 {
        return;
    }
    let step_y = (glyph_px * 5).max(1);
    let mut row = 0usize;
    let mut y = glyph_px;
    while y < img.height {
        let mut x = -((row * line_w / 3) as i64 % line_w as i64);
        while x < img.width as i64 {
            for (i, c) in line.chars().enumerate() {
                let gx = x + (i * glyph_px) as i64;
                draw_glyph(img, glyph(c), gx, y as i64, scale);
            }
            x += line_w as i64;
        }
        row += 1;
        y += step_y;
    }
}

fn draw_glyph(img: &mut Rgb, g: [u8; 8], x0: i64, y0: i64, scale: usize) {
    let s = scale as i64;
    let on = |gx: i64, gy: i64| {
        (0..8).contains(&gx) && (0..8).contains(&gy) && g[gy as usize] & (1 << gx) != 0
    };
    for gy in -1..9i64 {
        for gx in -1..9i64 {
            let lit = on(gx, gy);
            // the dark edge: a pixel beside a lit one
            let edge =
                !lit && (on(gx - 1, gy) || on(gx + 1, gy) || on(gx, gy - 1) || on(gx, gy + 1));
            let colour = match (lit, edge) {
                (true, _) => 255u8,
                (false, true) => 0u8,
                _ => continue,
            };
            for dy in 0..s {
                for dx in 0..s {
                    blend(img, x0 + gx * s + dx, y0 + gy * s + dy, colour);
                }
            }
        }
    }
}

/// Mix `colour` (grey) half into the pixel at (x, y), when it is inside the picture.
fn blend(img: &mut Rgb, x: i64, y: i64, colour: u8) {
    if x < 0 || y < 0 || x as usize >= img.width || y as usize >= img.height {
        return;
    }
    let i = (y as usize * img.width + x as usize) * 3;
    for c in &mut img.data[i..i + 3] {
        *c = ((*c as u16 + colour as u16) / 2) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(w: usize, h: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&[(x % 256) as u8, (y % 256) as u8, 128]);
            }
        }
        decode::encode(
            &Rgb {
                width: w,
                height: h,
                data,
            },
            90,
        )
        .unwrap()
    }

    /// A 3000x2000 photo becomes 1024x683, a small one keeps its size, and no rendition is
    /// ever larger than asked.
    #[test]
    fn renditions_fit_the_long_side_and_are_never_enlarged() {
        let big = render(&photo(3000, 2000), PREVIEW_LONG, None).unwrap();
        let img = decode::decode(&big, 100_000).unwrap();
        assert_eq!((img.width, img.height), (1024, 683));
        let small = render(&photo(300, 200), PREVIEW_LONG, Some("x")).unwrap();
        let img = decode::decode(&small, 100_000).unwrap();
        assert_eq!((img.width, img.height), (300, 200));
        let tall = render(&photo(200, 3000), 500, None).unwrap();
        let img = decode::decode(&tall, 100_000).unwrap();
        assert_eq!((img.width, img.height), (33, 500));
        assert!(render(&photo(10, 10), 0, None).is_err());
        assert!(render(&photo(10, 10), MAX_LONG + 1, None).is_err());
        assert!(render(b"not a picture", 100, None).is_err());
    }

    /// The watermark changes pixels all over the picture (every quarter of it), and only in
    /// the light/dark tones it is drawn with.
    #[test]
    fn the_watermark_covers_the_whole_picture() {
        let base = decode::decode(&photo(800, 600), 100_000).unwrap();
        let mut marked = base.clone();
        watermark_on(&mut marked, "PREVIEW - consentfs");
        for (qx, qy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let mut changed = 0;
            for y in qy * 300..(qy + 1) * 300 {
                for x in qx * 400..(qx + 1) * 400 {
                    let i = (y * 800 + x) * 3;
                    if base.data[i..i + 3] != marked.data[i..i + 3] {
                        changed += 1;
                    }
                }
            }
            assert!(
                changed > 2_000,
                "quarter ({qx}, {qy}): {changed} pixels marked"
            );
        }
        // non-ASCII and overlong text are drawn too, without a panic
        watermark_on(&mut marked, &"Ünïcødé ".repeat(100));
    }

    /// What comes out is a JPEG with no metadata segment: no APP1 (EXIF/XMP), APP13 (IPTC)
    /// or comment, whatever the input carried.
    #[test]
    fn renditions_carry_no_metadata() {
        let mut tagged = photo(64, 64);
        // an APP1 "Exif" segment with a fake GPS tag, right after SOI
        let exif = b"Exif\0\0GPS 52.37N 4.89E secret";
        let mut seg = vec![0xFF, 0xE1];
        seg.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        seg.extend_from_slice(exif);
        tagged.splice(2..2, seg);
        let out = render(&tagged, 64, Some("w")).unwrap();
        assert!(!out.windows(4).any(|w| w == b"Exif"));
        assert!(!out.windows(6).any(|w| w == b"secret"));
        // walk the segments up to the scan: none is APPn (but JFIF's APP0) or COM
        let mut i = 2;
        while i + 4 <= out.len() && out[i] == 0xFF {
            let m = out[i + 1];
            if m == 0xDA {
                break;
            }
            assert!(!(0xE1..=0xEF).contains(&m) && m != 0xFE, "segment {m:#x}");
            let len = u16::from_be_bytes([out[i + 2], out[i + 3]]) as usize;
            i += 2 + len;
        }
    }
}
