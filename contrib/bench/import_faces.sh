#!/usr/bin/env bash
# Import with face detection (issue 16 item 9): N photos of 12 MP (default 1000), imported once
# with the face model and once without it (CONSENTFS_FACE_MODEL pointing nowhere). The
# difference is the share spent in detection (both runs decode each photo once for its
# perceptual hash; the run with the model also runs the network on it). Every photo is distinct: each is one of a few
# scikit-image sample photos at 4000x3000, and each copy gets its own JPEG comment so that
# dedup does not merge them (near-duplicate suggestions then find them alike, as they are).
#
#   contrib/bench/import_faces.sh [N]     (release build; needs the model and the photos:
#                                          contrib/install-face-model.sh,
#                                          contrib/fetch-face-test-photos.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000}
photos=${CONSENTFS_TEST_PHOTOS:-/usr/local/share/consentfs-test/skimage}
cargo build --release --quiet
bin=$PWD/target/release/consentfs
work=$(mktemp -d /var/tmp/cfs-bench-faces.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/base" "$work/in"
i=0
for p in astronaut.png camera.png coffee.png chelsea.png rocket.jpg; do
  convert "$photos/$p" -resize 4000x3000! -quality 90 "$work/base/$i.jpg"
  i=$((i + 1))
done
/usr/bin/python3 - "$work" "$n" <<'PY'
import os, sys
work, n = sys.argv[1], int(sys.argv[2])
bases = [open(os.path.join(work, "base", f"{i}.jpg"), "rb").read() for i in range(5)]
for k in range(n):
    b = bases[k % len(bases)]
    note = f"copy {k}".encode()
    # a JPEG comment segment (FF FE, length) right after the start-of-image marker
    seg = b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note
    with open(os.path.join(work, "in", f"p{k:05d}.jpg"), "wb") as f:
        f.write(b[:2] + seg + b[2:])
PY
mb=$(du -sm "$work/in" | cut -f1)
run() {
  local label=$1; shift
  rm -rf "$work/store" "$work/key"
  env "$@" "$bin" --store "$work/store" --key-file "$work/key" init >/dev/null 2>&1
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  local t0 t1
  t0=$(date +%s.%N)
  env "$@" "$bin" --store "$work/store" --key-file "$work/key" import --collection bench "$work/in" >"$work/$label.out" 2>&1
  t1=$(date +%s.%N)
  python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); n=int(sys.argv[3]); print(f'{sys.argv[4]:<22} {t:7.1f} s  {n/t:6.1f} photos/s')" "$t0" "$t1" "$n" "$label"
  echo "$t0 $t1" > "$work/$label.t"
}
echo "import of $n photos of 12 MP ($mb MiB), $(nproc) cores"
run "without detection" CONSENTFS_FACE_MODEL=/nonexistent
run "with detection" CONSENTFS_FACE_MODEL="${CONSENTFS_FACE_MODEL:-/usr/local/share/consentfs/retinaface-mnet025.onnx}"
grep -h "^faces:" "$work/with detection.out" || true
python3 - "$work" <<'PY'
import sys
w = sys.argv[1]
a = [float(x) for x in open(f"{w}/without detection.t").read().split()]
b = [float(x) for x in open(f"{w}/with detection.t").read().split()]
plain, full = a[1] - a[0], b[1] - b[0]
print(f"share spent in face detection: {100 * (full - plain) / full:.0f}%")
PY
