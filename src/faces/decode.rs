//! Decoding photos for face detection, small and bounded: JPEGs at reduced scale with the
//! decoder's DCT scaling (a 12 MP JPEG is decoded at 1/4 scale, four to ten times faster than in
//! full), PNGs in full but only up to a size limit, raw files (CR2, NEF, DNG, ARW, ...) through
//! the JPEG preview the camera embedded, which exiftool extracts (no raw parser of our own). The
//! image is turned upright by its EXIF orientation, so boxes are where a viewer sees the faces.
//! Every size is checked before anything that big is allocated.

use std::io::{Cursor, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};

/// Headers claiming more pixels than this are refused before decoding. The JPEG decoder keeps a
/// full-size buffer of coefficients for progressive files (measured: 1.2 GB for a 196 MP header)
/// and walks every block even at 1/8 scale, so a hostile 60000x60000 header must not get that
/// far; 100 MP covers the largest common sensors (medium format, 100 MP) at about 600 MB peak.
/// Bigger photos get an error saying so (the caller treats them as not scanned).
pub const MAX_PIXELS: u64 = 100_000_000;

/// A JPEG's compressed data cannot be smaller than one bit per 8x8 luma block (every block has
/// at least a one-bit DC code), that is pixels / 512 bytes; a file under half that claims pixels
/// it does not have. Without this check a 4 KB file claiming 196 MP kept the decoder busy for
/// 20-40 s (it pads missing data and decodes every block).
pub const MIN_JPEG_BYTES_PER_MEGAPIXEL: u64 = 1_000_000 / 1024;

/// PNGs are decoded in full (no DCT scaling), so they get a lower limit: 50 MP is at most
/// 200 MB of RGBA while decoding. Photos are rarely PNGs; a bigger one is refused with a message.
pub const MAX_PNG_PIXELS: u64 = 50_000_000;

/// The largest embedded preview taken from a raw file: full-size previews of 100 MP cameras are
/// about 40 MB.
pub const MAX_PREVIEW_BYTES: u64 = 64 << 20;

/// An 8-bit RGB image, rows top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// The formats detection reads, by their first bytes (not by name: a store's files can be named
/// anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    /// A raw camera file (TIFF-based CR2/NEF/DNG/ARW/PEF..., Olympus ORF, Panasonic RW2,
    /// Fujifilm RAF, Canon CR3) whose embedded JPEG preview is scanned.
    Raw,
}

impl Format {
    /// The format of a file from its first bytes; None for anything detection cannot read
    /// (videos, PDFs, HEIC, WebP, ...).
    pub fn sniff(b: &[u8]) -> Option<Format> {
        if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpeg)
        } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if b.starts_with(b"II*\0")
            || b.starts_with(b"MM\0*")
            || b.starts_with(b"IIRO")
            || b.starts_with(b"IIRS")
            || b.starts_with(b"IIU\0")
            || b.starts_with(b"FUJIFILMCCD-RAW")
            || (b.len() >= 12 && &b[4..12] == b"ftypcrx ")
        {
            Some(Format::Raw)
        } else {
            None
        }
    }
}

/// Decodes `bytes` upright, at a scale whose long side is at least `want_long` pixels where the
/// format can scale while decoding (JPEG, and raw previews, which are JPEGs) and the image is
/// that big; smaller images come at their own size. Errors say which format failed and why.
pub fn decode(bytes: &[u8], want_long: usize) -> Result<Rgb> {
    match Format::sniff(bytes) {
        Some(Format::Jpeg) => {
            let (img, exif) = decode_jpeg(bytes, want_long)?;
            Ok(orient(
                img,
                exif.as_deref().map(exif_orientation).unwrap_or(1),
            ))
        }
        Some(Format::Png) => decode_png(bytes),
        Some(Format::Raw) => {
            let (preview, orientation) = match raw_preview(bytes, want_long)? {
                Preview::Jpeg(jpeg, orientation) => (jpeg, orientation),
                // a plain TIFF (a scanned print) has no preview: its own pixels are the picture
                Preview::PlainTiff => return decode_tiff(bytes),
            };
            if Format::sniff(&preview) != Some(Format::Jpeg) {
                return Err(Error::invalid(
                    "the raw file's embedded preview is not a JPEG",
                ));
            }
            let (img, _) = decode_jpeg(&preview, want_long)?;
            // The raw file's orientation applies to its preview (which rarely has its own).
            Ok(orient(img, orientation))
        }
        None => Err(unsupported()),
    }
}

/// `img` scaled down so that its long side is at most `long` (as it is when it already fits).
pub fn fit(img: Rgb, long: usize) -> Rgb {
    let have = img.width.max(img.height);
    if have <= long {
        return img;
    }
    let s = long as f32 / have as f32;
    let w = ((img.width as f32 * s).round() as usize).max(1);
    let h = ((img.height as f32 * s).round() as usize).max(1);
    resize(&img, w, h)
}

/// `img` as a baseline JPEG of `quality`, with no metadata segments.
pub fn encode(img: &Rgb, quality: u8) -> Result<Vec<u8>> {
    let (w, h) = (u16::try_from(img.width), u16::try_from(img.height));
    let (Ok(w), Ok(h)) = (w, h) else {
        return Err(Error::invalid("the picture is too large to encode"));
    };
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(&img.data, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| Error::invalid(format!("cannot encode the picture: {e}")))?;
    Ok(out)
}

/// The error for a file that is no image detection reads; its text starts with "not an image"
/// so callers and users can tell it from a damaged image.
pub fn unsupported() -> Error {
    Error::invalid("not an image face detection can read (JPEG, PNG, TIFF or a raw camera file)")
}

fn decode_jpeg(bytes: &[u8], want_long: usize) -> Result<(Rgb, Option<Vec<u8>>)> {
    let bad = |e: jpeg_decoder::Error| Error::invalid(format!("cannot decode the JPEG: {e}"));
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    d.read_info().map_err(bad)?;
    let info = d
        .info()
        .ok_or_else(|| Error::invalid("cannot decode the JPEG: no header"))?;
    let (w, h) = (info.width as u64, info.height as u64);
    check_size(w, h, MAX_PIXELS)?;
    if (bytes.len() as u64) < w * h * MIN_JPEG_BYTES_PER_MEGAPIXEL / 1_000_000 {
        return Err(Error::invalid(format!(
            "the JPEG is damaged: {} bytes cannot hold {w}x{h} pixels",
            bytes.len()
        )));
    }
    // Ask for the smallest DCT scale (1/8, 1/4, 1/2, 1) that keeps the long side >= want_long.
    let long = w.max(h).max(1);
    let want = (want_long as u64).min(long);
    let rw = (w * want).div_ceil(long).clamp(1, u16::MAX as u64) as u16;
    let rh = (h * want).div_ceil(long).clamp(1, u16::MAX as u64) as u16;
    let (ow, oh) = d.scale(rw, rh).map_err(bad)?;
    // The decoded buffer is bounded too (coefficients of progressive files included).
    d.set_max_decoding_buffer_size((MAX_PIXELS * 3) as usize);
    let px = d.decode().map_err(bad)?;
    let (ow, oh) = (ow as usize, oh as usize);
    let format = d
        .info()
        .map(|i| i.pixel_format)
        .unwrap_or(info.pixel_format);
    let n = ow * oh;
    let data = match format {
        jpeg_decoder::PixelFormat::RGB24 => px,
        jpeg_decoder::PixelFormat::L8 => px.iter().flat_map(|&l| [l, l, l]).collect(),
        jpeg_decoder::PixelFormat::L16 => px
            .chunks_exact(2)
            .flat_map(|c| {
                let l = c[0];
                [l, l, l]
            })
            .collect(),
        // Adobe CMYK JPEGs store inverted ink values; as the `image` crate converts them.
        jpeg_decoder::PixelFormat::CMYK32 => px
            .chunks_exact(4)
            .flat_map(|c| {
                let k = c[3] as u16;
                [
                    (c[0] as u16 * k / 255) as u8,
                    (c[1] as u16 * k / 255) as u8,
                    (c[2] as u16 * k / 255) as u8,
                ]
            })
            .collect(),
    };
    if data.len() != n * 3 {
        return Err(Error::invalid(
            "cannot decode the JPEG: unexpected pixel data size",
        ));
    }
    let exif = d.exif_data().map(|e| e.to_vec());
    Ok((
        Rgb {
            width: ow,
            height: oh,
            data,
        },
        exif,
    ))
}

fn decode_png(bytes: &[u8]) -> Result<Rgb> {
    let bad = |e: png::DecodingError| Error::invalid(format!("cannot decode the PNG: {e}"));
    let limits = png::Limits {
        bytes: (MAX_PNG_PIXELS * 4) as usize + (1 << 20),
    };
    let mut d = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    d.set_transformations(png::Transformations::normalize_to_color8());
    let mut r = d.read_info().map_err(bad)?;
    let (w, h) = (r.info().width as u64, r.info().height as u64);
    check_size(w, h, MAX_PNG_PIXELS)?;
    let size = r
        .output_buffer_size()
        .ok_or_else(|| Error::invalid("cannot decode the PNG: too large"))?;
    let mut buf = vec![0u8; size];
    let out = r.next_frame(&mut buf).map_err(bad)?;
    let (w, h) = (out.width as usize, out.height as usize);
    let channels = match out.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(Error::invalid(
                "cannot decode the PNG: palette not expanded",
            ))
        }
    };
    let mut data = Vec::with_capacity(w * h * 3);
    for row in buf.chunks(out.line_size).take(h) {
        for p in row.chunks_exact(channels).take(w) {
            match channels {
                1 | 2 => data.extend_from_slice(&[p[0], p[0], p[0]]),
                _ => data.extend_from_slice(&p[..3]),
            }
        }
    }
    if data.len() != w * h * 3 {
        return Err(Error::invalid(
            "cannot decode the PNG: truncated pixel data",
        ));
    }
    Ok(Rgb {
        width: w,
        height: h,
        data,
    })
}

fn check_size(w: u64, h: u64, max: u64) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(Error::invalid("the image has no pixels"));
    }
    if w * h > max {
        return Err(Error::invalid(format!(
            "the image is too large to scan for faces ({w}x{h}, more than {} megapixels)",
            max / 1_000_000
        )));
    }
    Ok(())
}

/// The EXIF orientation (1..=8) in raw EXIF data (a TIFF structure), 1 when absent or unreadable.
fn exif_orientation(exif: &[u8]) -> u32 {
    let Ok(e) = exif::Reader::new().read_raw(exif.to_vec()) else {
        return 1;
    };
    e.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .filter(|o| (1..=8).contains(o))
        .unwrap_or(1)
}

/// The image turned upright for an EXIF orientation: 2 mirrored, 3 upside down, 4 flipped, 5..8
/// transposed/rotated (the camera was held on its side).
pub fn orient(img: Rgb, orientation: u32) -> Rgb {
    if !(2..=8).contains(&orientation) {
        return img;
    }
    let (w, h) = (img.width, img.height);
    let swap = orientation >= 5;
    let (nw, nh) = if swap { (h, w) } else { (w, h) };
    let mut data = vec![0u8; w * h * 3];
    for y in 0..nh {
        for x in 0..nw {
            // Where in the stored image the upright pixel (x, y) comes from.
            let (sx, sy) = match orientation {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                _ => (w - 1 - y, x), // 8
            };
            let s = (sy * w + sx) * 3;
            let d = (y * nw + x) * 3;
            data[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    Rgb {
        width: nw,
        height: nh,
        data,
    }
}

/// The raw file's embedded JPEG preview (the largest one when the first is smaller than
/// `want_long`) and the raw file's orientation, read by exiftool from standard input: raw formats
/// are many and undocumented, and exiftool knows them all.
fn raw_preview(bytes: &[u8], want_long: usize) -> Result<Preview> {
    let json = exiftool(
        bytes,
        &[
            "-j",
            "-b",
            "-n",
            "-FileType",
            "-Orientation",
            "-PreviewImage",
            "-JpgFromRaw",
            "-",
        ],
    )?;
    let v: serde_json::Value = serde_json::from_slice(&json).map_err(|e| {
        Error::invalid(format!(
            "cannot read exiftool's answer about the raw file: {e}"
        ))
    })?;
    let first = v
        .get(0)
        .ok_or_else(|| Error::invalid("exiftool gave no answer about the raw file"))?;
    let orientation = first
        .get("Orientation")
        .and_then(|o| o.as_u64())
        .filter(|o| (1..=8).contains(o))
        .unwrap_or(1) as u32;
    let mut best: Option<(Vec<u8>, u64)> = None;
    // the size of a preview passed over for being larger than MAX_PREVIEW_BYTES
    let mut too_large = None;
    for tag in ["PreviewImage", "JpgFromRaw"] {
        let Some(b64) = first
            .get(tag)
            .and_then(|t| t.as_str())
            .and_then(|s| s.strip_prefix("base64:"))
        else {
            continue;
        };
        use base64::Engine as _;
        let Ok(jpeg) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            continue;
        };
        // A preview this big is no camera's (a JPEG and megabytes of padding in its strip, as
        // the raw's tags may claim): not decoded, so the limit means what it says.
        if jpeg.len() as u64 > MAX_PREVIEW_BYTES {
            too_large = Some(jpeg.len());
            continue;
        }
        let long = jpeg_long_side(&jpeg);
        if best
            .as_ref()
            .is_none_or(|(_, l)| *l < want_long as u64 && long > *l)
        {
            best = Some((jpeg, long));
        }
    }
    // a TIFF that is no camera's raw file (exiftool tells them apart by their tags)
    let plain_tiff = first.get("FileType").and_then(|t| t.as_str()) == Some("TIFF");
    match (best, too_large) {
        (Some((jpeg, _)), _) => Ok(Preview::Jpeg(jpeg, orientation)),
        (None, None) if plain_tiff => Ok(Preview::PlainTiff),
        (None, Some(n)) => Err(Error::invalid(format!(
            "the raw file's embedded preview is too large to scan for faces ({} MiB, more than {} MiB)",
            n >> 20,
            MAX_PREVIEW_BYTES >> 20
        ))),
        (None, None) => Err(Error::invalid(format!("{NO_PREVIEW} to scan for faces"))),
    }
}

/// What a raw (or TIFF-like) file gives to scan.
enum Preview {
    /// Its embedded JPEG preview, and the raw file's orientation.
    Jpeg(Vec<u8>, u32),
    /// A plain TIFF without a preview (a scanned print): its own pixels are the picture.
    PlainTiff,
}

/// What [`raw_preview`] says when a raw file has no preview.
const NO_PREVIEW: &str = "the raw file has no embedded JPEG preview";

/// A TIFF's own first image, upright (its Orientation tag applied), with the same bounds as a
/// PNG: the `image` crate's TIFF decoder, with its allocation limited before it reads pixels.
fn decode_tiff(bytes: &[u8]) -> Result<Rgb> {
    use image::ImageDecoder as _;
    let bad = |e: image::ImageError| Error::invalid(format!("cannot decode the TIFF: {e}"));
    let mut d = image::codecs::tiff::TiffDecoder::new(Cursor::new(bytes)).map_err(bad)?;
    let (w, h) = d.dimensions();
    check_size(u64::from(w), u64::from(h), MAX_PNG_PIXELS)?;
    let mut limits = image::Limits::default();
    // 16-bit RGBA at the largest size allowed, and the decoder's working buffers
    limits.max_alloc = Some(MAX_PNG_PIXELS * 8 + (64 << 20));
    d.set_limits(limits).map_err(bad)?;
    let orientation = d.orientation().map(|o| u32::from(o.to_exif())).unwrap_or(1);
    let img = image::DynamicImage::from_decoder(d)
        .map_err(bad)?
        .into_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    Ok(orient(
        Rgb {
            width: w,
            height: h,
            data: img.into_raw(),
        },
        orientation,
    ))
}

fn jpeg_long_side(jpeg: &[u8]) -> u64 {
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(jpeg));
    match d.read_info().ok().and_then(|_| d.info()) {
        Some(i) => i.width.max(i.height) as u64,
        None => 0,
    }
}

/// How long exiftool may take over one raw file. It reads a 512 MB file from a pipe in a few
/// seconds; one that takes minutes is stuck on a hostile file, and would hold a detection
/// thread (and the scan waiting for it) for ever.
pub const EXIFTOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs exiftool on `input`; see [`run_tool`].
fn exiftool(input: &[u8], args: &[&str]) -> Result<Vec<u8>> {
    run_tool("exiftool", input, args, EXIFTOOL_TIMEOUT)
}

/// Runs `program` on `input` (fed through standard input from a thread, so a large file cannot
/// deadlock against a full output pipe); its output is bounded by `MAX_PREVIEW_BYTES` times the
/// two previews plus base64 overhead. After `timeout` its process group is killed (the group,
/// so a helper it started cannot keep the output pipe open) and the file is reported as one
/// exiftool could not read in time.
fn run_tool(program: &str, input: &[u8], args: &[&str], timeout: Duration) -> Result<Vec<u8>> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            Error::invalid(format!(
                "scanning raw files for faces needs exiftool (Debian: apt-get install libimage-exiftool-perl): {e}"
            ))
        })?;
    let group = child.id() as libc::pid_t;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let limit = MAX_PREVIEW_BYTES * 3;
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let (wrote, out, killed) = std::thread::scope(|s| {
        let writer = s.spawn(move || {
            // exiftool may stop reading early (it has what it needs): a broken pipe is fine.
            if let Some(mut i) = stdin.take() {
                let _ = i.write_all(input);
            }
        });
        // The child is not reaped before this thread is joined, so its id (and group) cannot
        // have been reused by then.
        let watchdog = s.spawn(move || match finished.recv_timeout(timeout) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // SAFETY: a plain system call on a process group we started
                unsafe { libc::kill(-group, libc::SIGKILL) };
                true
            }
            _ => false,
        });
        let mut out = Vec::new();
        let read = match stdout.as_mut() {
            Some(o) => o.take(limit + 1).read_to_end(&mut out).map(|_| ()),
            None => Ok(()),
        };
        drop(stdout.take());
        let wrote = writer.join().is_ok();
        let _ = done.send(());
        let killed = watchdog.join().unwrap_or(false);
        (wrote, read.map(|_| out), killed)
    });
    let status = child.wait().map_err(|e| Error::io("exiftool", e))?;
    if killed {
        return Err(Error::invalid(format!(
            "exiftool took more than {} s over the raw file and was stopped",
            timeout.as_secs_f32()
        )));
    }
    let out = out.map_err(|e| Error::io("reading exiftool's output", e))?;
    if !wrote || out.len() as u64 > limit {
        return Err(Error::invalid(
            "the raw file's embedded preview is too large",
        ));
    }
    if !status.success() && out.is_empty() {
        return Err(Error::invalid("exiftool cannot read the raw file"));
    }
    Ok(out)
}

/// `img` resized to `nw` x `nh`: first an integer box filter while shrinking by 2 or more (so
/// fine detail averages instead of aliasing), then bilinear interpolation.
pub fn resize(img: &Rgb, nw: usize, nh: usize) -> Rgb {
    let nw = nw.max(1);
    let nh = nh.max(1);
    let k = (img.width / nw).min(img.height / nh).max(1);
    let boxed;
    let src = if k >= 2 {
        boxed = box_reduce(img, k);
        &boxed
    } else {
        img
    };
    bilinear(src, nw, nh)
}

fn box_reduce(img: &Rgb, k: usize) -> Rgb {
    let (w, h) = (img.width / k, img.height / k);
    let mut sums = vec![0u32; w * 3];
    let mut data = Vec::with_capacity(w * h * 3);
    let div = (k * k) as u32;
    for by in 0..h {
        sums.iter_mut().for_each(|s| *s = 0);
        for y in by * k..by * k + k {
            let row = &img.data[y * img.width * 3..(y * img.width + w * k) * 3];
            for (x, px) in row.chunks_exact(3).enumerate() {
                let o = (x / k) * 3;
                sums[o] += px[0] as u32;
                sums[o + 1] += px[1] as u32;
                sums[o + 2] += px[2] as u32;
            }
        }
        data.extend(sums.iter().map(|s| ((s + div / 2) / div) as u8));
    }
    Rgb {
        width: w,
        height: h,
        data,
    }
}

fn bilinear(img: &Rgb, nw: usize, nh: usize) -> Rgb {
    if img.width == nw && img.height == nh {
        return img.clone();
    }
    let sx = img.width as f32 / nw as f32;
    let sy = img.height as f32 / nh as f32;
    let mut data = Vec::with_capacity(nw * nh * 3);
    // Horizontal sample positions and weights, computed once per column.
    let cols: Vec<(usize, usize, f32)> = (0..nw)
        .map(|x| {
            let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (img.width - 1) as f32);
            let x0 = fx as usize;
            (x0, (x0 + 1).min(img.width - 1), fx - x0 as f32)
        })
        .collect();
    for y in 0..nh {
        let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (img.height - 1) as f32);
        let y0 = fy as usize;
        let y1 = (y0 + 1).min(img.height - 1);
        let ty = fy - y0 as f32;
        let r0 = &img.data[y0 * img.width * 3..(y0 + 1) * img.width * 3];
        let r1 = &img.data[y1 * img.width * 3..(y1 + 1) * img.width * 3];
        for &(x0, x1, tx) in &cols {
            for c in 0..3 {
                let a = r0[x0 * 3 + c] as f32 * (1.0 - tx) + r0[x1 * 3 + c] as f32 * tx;
                let b = r1[x0 * 3 + c] as f32 * (1.0 - tx) + r1[x1 * 3 + c] as f32 * tx;
                data.push((a * (1.0 - ty) + b * ty + 0.5) as u8);
            }
        }
    }
    Rgb {
        width: nw,
        height: nh,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: usize, h: usize) -> Rgb {
        // Each pixel's red is its index, so moves can be traced.
        let data = (0..w * h).flat_map(|i| [i as u8, 0, 0]).collect();
        Rgb {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn formats_are_told_by_their_first_bytes() {
        assert_eq!(Format::sniff(b"\xFF\xD8\xFF\xE0rest"), Some(Format::Jpeg));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\nrest"), Some(Format::Png));
        assert_eq!(Format::sniff(b"II*\0\x10\0\0\0CR\x02\0"), Some(Format::Raw));
        assert_eq!(Format::sniff(b"MM\0*\0\0\0\x08"), Some(Format::Raw));
        assert_eq!(Format::sniff(b"\0\0\0\x18ftypcrx \0\0"), Some(Format::Raw));
        assert_eq!(Format::sniff(b"\0\0\0\x18ftypheic\0\0"), None);
        assert_eq!(Format::sniff(b"%PDF-1.7"), None);
        assert_eq!(Format::sniff(b""), None);
    }

    /// A stuck exiftool (here a shell that started a helper and waits for it, the helper
    /// holding the output pipe) is stopped after the timeout, helper and all, with an error.
    #[test]
    fn a_stuck_exiftool_is_stopped_after_its_timeout() {
        let t = std::time::Instant::now();
        let e = run_tool(
            "sh",
            b"II*\0",
            &["-c", "sleep 30; echo late"],
            Duration::from_millis(300),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("was stopped"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        // one that answers in time is not disturbed
        let out = run_tool("sh", b"", &["-c", "echo '[{}]'"], Duration::from_secs(30)).unwrap();
        assert_eq!(out, b"[{}]\n");
    }

    #[test]
    fn unknown_bytes_are_an_error_that_says_so() {
        let e = decode(b"hello, world", 1000).unwrap_err().to_string();
        assert!(e.starts_with("not an image"), "{e}");
    }

    #[test]
    fn a_12_megapixel_jpeg_is_decoded_at_a_quarter_scale() {
        let (w, h) = (4000u16, 3000u16);
        let px = [90u8, 120, 200].repeat(w as usize * h as usize);
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 80)
            .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        // What the detector asks for.
        let img = decode(&jpeg, super::super::DECODE_LONG).unwrap();
        assert_eq!((img.width, img.height), (1000, 750));
        // Small images come at their own size.
        let img = decode(&jpeg, 8000).unwrap();
        assert_eq!((img.width, img.height), (4000, 3000));
    }

    #[test]
    fn orientations_turn_the_image_upright() {
        // 3 x 2 stored: 0 1 2 / 3 4 5
        let red = |o: u32| {
            let r = orient(img(3, 2), o);
            (
                r.width,
                r.height,
                r.data.chunks(3).map(|p| p[0]).collect::<Vec<_>>(),
            )
        };
        assert_eq!(red(1), (3, 2, vec![0, 1, 2, 3, 4, 5]));
        assert_eq!(red(2), (3, 2, vec![2, 1, 0, 5, 4, 3]));
        assert_eq!(red(3), (3, 2, vec![5, 4, 3, 2, 1, 0]));
        assert_eq!(red(4), (3, 2, vec![3, 4, 5, 0, 1, 2]));
        assert_eq!(red(5), (2, 3, vec![0, 3, 1, 4, 2, 5]));
        // 6: the camera was turned clockwise; upright = stored turned 90 degrees clockwise.
        assert_eq!(red(6), (2, 3, vec![3, 0, 4, 1, 5, 2]));
        assert_eq!(red(7), (2, 3, vec![5, 2, 4, 1, 3, 0]));
        assert_eq!(red(8), (2, 3, vec![2, 5, 1, 4, 0, 3]));
        assert_eq!(red(9), red(1));
    }

    #[test]
    fn resize_averages_when_shrinking_and_keeps_flat_colours() {
        let flat = Rgb {
            width: 40,
            height: 30,
            data: [10u8, 200, 30].repeat(1200),
        };
        let r = resize(&flat, 7, 5);
        assert_eq!((r.width, r.height), (7, 5));
        assert!(
            r.data.chunks(3).all(|p| p == [10, 200, 30]),
            "{:?}",
            &r.data[..9]
        );
        let up = resize(&flat, 100, 75);
        assert_eq!(up.data.len(), 100 * 75 * 3);
        assert!(up.data.chunks(3).all(|p| p == [10, 200, 30]));
        // A 1x1 image scales to anything without panicking.
        let one = resize(&img(1, 1), 5, 3);
        assert_eq!(one.data.len(), 45);
    }
}
