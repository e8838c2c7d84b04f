#!/usr/bin/env bash
# Real photos for tests/faces.rs and contrib/bench/faces.sh: scikit-image's sample images, which
# Debian ships in python3-skimage (astronaut.png: NASA, public domain; camera.png, coffee.png,
# chelsea.png, brick.png, grass.png, gravel.png: CC0; rocket.jpg: NASA, public domain). The
# package is downloaded with apt-get and unpacked, not installed (installing it would pull in
# SciPy, Matplotlib and fifty more packages for a few PNGs).
#
#   contrib/fetch-face-test-photos.sh        # into /usr/local/share/consentfs-test/skimage
#   DEST=/some/dir contrib/fetch-face-test-photos.sh
#
# The tests look in $CONSENTFS_TEST_PHOTOS, else in that default folder.
set -euo pipefail

DEST=${DEST:-/usr/local/share/consentfs-test/skimage}
PHOTOS="astronaut.png camera.png coffee.png chelsea.png brick.png grass.png gravel.png rocket.jpg"

missing=0
for p in $PHOTOS; do [ -f "$DEST/$p" ] || missing=1; done
[ "$missing" = 0 ] && exit 0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# apt-get download writes into the current folder; _apt must be able to write there.
chmod 0777 "$tmp"
(cd "$tmp" && apt-get download -qq python3-skimage)
dpkg-deb -x "$tmp"/python3-skimage_*.deb "$tmp/root"
install -d -m 0755 "$DEST"
for p in $PHOTOS; do
  install -m 0644 "$tmp/root/usr/lib/python3/dist-packages/skimage/data/$p" "$DEST/$p"
done
echo "test photos in $DEST"
