//! The photo with numbered face boxes, for `consentfs faces show`: a reviewer sees which face is
//! number 3 before linking it (`link --face 3`). Digits come from a built-in 5x7 bitmap font
//! (no font files, nothing fetched), scaled with the picture so they stay readable.

use super::decode::{self, Rgb};
use super::FaceBox;
use crate::error::Result;

/// The picture's long side at most: enough to recognise faces, bounded in time and memory.
pub const SHOW_LONG: usize = 2048;

/// Digits 0-9, 5 columns x 7 rows, one byte per row, bit 4 the leftmost column.
const DIGITS: [[u8; 7]; 10] = [
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
];

const BOX: [u8; 3] = [255, 214, 0];
const DARK: [u8; 3] = [0, 0, 0];
const LIGHT: [u8; 3] = [255, 255, 255];

/// The photo (JPEG, PNG or raw preview, upright, at most `SHOW_LONG` px on its long side) with
/// each box drawn and numbered 1.. in the order given (pass them in `detect`'s reading order),
/// as JPEG bytes.
pub fn draw_boxes(image: &[u8], boxes: &[FaceBox]) -> Result<Vec<u8>> {
    let mut img = decode::fit(decode::decode(image, SHOW_LONG)?, SHOW_LONG);
    draw_on(&mut img, boxes);
    decode::encode(&img, 88)
}

/// Draws the numbered boxes on `img`.
pub(crate) fn draw_on(img: &mut Rgb, boxes: &[FaceBox]) {
    let long = img.width.max(img.height);
    let t = (long / 400).max(2) as i64;
    let scale = (long / 300).max(2) as i64;
    let (w, h) = (img.width as f32, img.height as f32);
    for (i, b) in boxes.iter().enumerate() {
        if ![b.x, b.y, b.w, b.h].iter().all(|v| v.is_finite()) {
            continue;
        }
        let x0 = (b.x.clamp(0.0, 1.0) * w) as i64;
        let y0 = (b.y.clamp(0.0, 1.0) * h) as i64;
        let x1 = ((b.x + b.w).clamp(0.0, 1.0) * w) as i64;
        let y1 = ((b.y + b.h).clamp(0.0, 1.0) * h) as i64;
        // A dark outline around a bright frame: visible on light and dark backgrounds.
        frame(
            img,
            x0 - t - 1,
            y0 - t - 1,
            x1 + t + 1,
            y1 + t + 1,
            t + 2,
            DARK,
        );
        frame(img, x0 - t, y0 - t, x1 + t, y1 + t, t, BOX);
        let label = (i + 1).to_string();
        let lw = label.len() as i64 * 6 * scale + scale;
        let lh = 9 * scale;
        // Above the box when there is room, else inside its top.
        let ly = if y0 - t - lh >= 0 { y0 - t - lh } else { y0 };
        let lx = (x0 - t).max(0);
        fill(img, lx, ly, lx + lw, ly + lh, DARK);
        for (k, ch) in label.bytes().enumerate() {
            let glyph = &DIGITS[(ch - b'0') as usize];
            let gx = lx + scale + k as i64 * 6 * scale;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        let px = gx + col * scale;
                        let py = ly + scale + row as i64 * scale;
                        fill(img, px, py, px + scale, py + scale, LIGHT);
                    }
                }
            }
        }
    }
}

/// A rectangle's border `t` px thick, inside (x0, y0)..(x1, y1), clipped to the image.
fn frame(img: &mut Rgb, x0: i64, y0: i64, x1: i64, y1: i64, t: i64, c: [u8; 3]) {
    fill(img, x0, y0, x1, y0 + t, c);
    fill(img, x0, y1 - t, x1, y1, c);
    fill(img, x0, y0, x0 + t, y1, c);
    fill(img, x1 - t, y0, x1, y1, c);
}

/// Fills (x0, y0)..(x1, y1), end exclusive, clipped to the image.
fn fill(img: &mut Rgb, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
    let (w, h) = (img.width as i64, img.height as i64);
    let (x0, x1) = (x0.clamp(0, w), x1.clamp(0, w));
    let (y0, y1) = (y0.clamp(0, h), y1.clamp(0, h));
    for y in y0..y1 {
        for x in x0..x1 {
            let o = ((y * w + x) * 3) as usize;
            img.data[o..o + 3].copy_from_slice(&c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_and_their_numbers_are_drawn_inside_the_picture_only() {
        let mut img = Rgb {
            width: 200,
            height: 100,
            data: vec![128; 200 * 100 * 3],
        };
        let boxes = [
            FaceBox {
                x: 0.1,
                y: 0.3,
                w: 0.2,
                h: 0.4,
                score: 0.99,
            },
            // Off the edge and absurd values: clipped or skipped, never a panic.
            FaceBox {
                x: 0.9,
                y: 0.9,
                w: 5.0,
                h: 5.0,
                score: 0.9,
            },
            FaceBox {
                x: f32::NAN,
                y: 0.0,
                w: 0.1,
                h: 0.1,
                score: 0.9,
            },
        ];
        draw_on(&mut img, &boxes);
        let at = |x: usize, y: usize| &img.data[(y * 200 + x) * 3..(y * 200 + x) * 3 + 3];
        // The first box's left edge is bright at x = 20 - t .. 20, mid-height.
        assert_eq!(at(19, 50), BOX);
        // Its label sits above it (box top y = 30): a dark patch with light pixels of "1".
        let label: Vec<&[u8]> = (18..30)
            .flat_map(|x| (10..28).map(move |y| (x, y)))
            .map(|(x, y)| at(x, y))
            .collect();
        assert!(label.contains(&&LIGHT[..]) && label.contains(&&DARK[..]));
        // The inside of the box is untouched.
        assert_eq!(at(40, 50), [128, 128, 128]);
    }

    #[test]
    fn every_digit_has_a_glyph_and_they_differ() {
        for (i, a) in DIGITS.iter().enumerate() {
            assert!(a.iter().any(|r| *r != 0));
            for b in &DIGITS[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
