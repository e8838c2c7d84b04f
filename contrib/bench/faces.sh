#!/usr/bin/env bash
# Face detection figures (issue 16 item 3): faces found / missed / false on the real test photos,
# the smallest faces found on a 12 MP photo, ms per 12 MP JPEG with the share of decoding, and
# photos per second on 1 and 2 threads. Needs the model (contrib/install-face-model.sh) and the
# photos (contrib/fetch-face-test-photos.sh); ImageMagick makes the 12 MP variants.
#
#   contrib/bench/faces.sh            # release build (what users run)
#   PROFILE=dev contrib/bench/faces.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=()
[ "${PROFILE:-release}" = release ] && profile=(--release)
cargo test "${profile[@]}" --test faces -- --ignored --exact bench --nocapture --test-threads 1
