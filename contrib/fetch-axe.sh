#!/usr/bin/env bash
# Fetches axe-core (Deque's accessibility checker, MPL-2.0), which tests/portal_http.rs runs in
# headless Chromium on the consent page's pages: axe.min.js 4.4.3 as the PyPI wheel
# axe-core-python 0.1.0 ships it. Downloads the wheel with pip (no install, nothing of it is
# run here), checks its pinned SHA-256, takes the one file out of it and checks that too.
#
#   contrib/fetch-axe.sh                         # as root: /usr/local/share/consentfs/axe.min.js
#   DEST=~/.local/share/consentfs contrib/fetch-axe.sh
#
# The test looks there and at $CONSENTFS_AXE_JS.
set -euo pipefail

DEST=${DEST:-/usr/local/share/consentfs}
WHEEL_SHA256=f99f6bd674726c631c5e20b876983b44dff2b8f452a0ccf08f3c23ee45d0aac3
AXE_SHA256=697ea6c7edff0fe289b7bbecf1ff7b9015249bc834b409a348cd060df80aeba0

if [ -f "$DEST/axe.min.js" ] && echo "$AXE_SHA256  $DEST/axe.min.js" | sha256sum -c --status; then
  echo "axe-core is already there: $DEST/axe.min.js"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" axe-core-python==0.1.0
wheel=$tmp/axe_core_python-0.1.0-py3-none-any.whl
[ -f "$wheel" ] || { echo "pip did not download $wheel" >&2; exit 1; }
echo "$WHEEL_SHA256  $wheel" | sha256sum -c --quiet - || {
  echo "the wheel's SHA-256 is not the pinned one: refusing it" >&2
  exit 1
}
python3 - "$wheel" "$tmp/axe.min.js" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("axe_core_python/axe.min.js"))
PY
echo "$AXE_SHA256  $tmp/axe.min.js" | sha256sum -c --quiet - || {
  echo "axe.min.js's SHA-256 is not the pinned one: refusing it" >&2
  exit 1
}
install -d -m 0755 "$DEST"
install -m 0644 "$tmp/axe.min.js" "$DEST/axe.min.js"
echo "installed axe-core: $DEST/axe.min.js"
