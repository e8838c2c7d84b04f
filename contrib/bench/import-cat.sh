#!/usr/bin/env bash
# Import and cat throughput for ~1 GiB of photos, against the raw XChaCha20-Poly1305 speed.
# Everything lives on tmpfs (/dev/shm) so the disk does not set the pace.
# Usage: contrib/bench/import-cat.sh [MiB]   (default 1024)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
mib=${1:-1024}
(cd "$here" && cargo build --release -q)
bin=$here/target/release/consentfs
work=$(mktemp -d /dev/shm/consentfs-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export CONSENTFS_STORE=$work/store CONSENTFS_KEY_FILE=$work/key

# photos of 8 MiB each (incompressible), plus one file of the whole size for cat
mkdir -p "$work/photos"
n=$((mib / 8))
for i in $(seq 1 "$n"); do head -c $((8 << 20)) /dev/urandom > "$work/photos/img$i.jpg"; done
"$bin" init
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }

t_import=$(secs "$bin" import --collection bench "$work/photos")
rm -rf "$work/photos"
head -c $((mib << 20)) /dev/urandom > "$work/one.raw"
t_copy=$(secs cp "$work/one.raw" "$work/copy.raw")
rm -f "$work/copy.raw"
t_import1=$(secs "$bin" import "$work/one.raw")
rm -f "$work/one.raw"
t_cat=$(secs sh -c "'$bin' cat one.raw > /dev/null")
t_cat_small=$(secs sh -c "for i in \$(seq 1 $n); do '$bin' cat bench/img\$i.jpg; done > /dev/null")

rate() { echo "scale=0; $mib / $1" | bc -l; }
"$bin" cipher-speed --mib 512 | tee "$work/cipher"
seal=$(awk '/seal/ {print $2}' "$work/cipher")
open=$(awk '/open/ {print $2}' "$work/cipher")
echo "plain_cp_within_tmpfs_mib_s $(rate "$t_copy")   (the limit: this VM's tmpfs write speed)"
echo "import_${n}_photos_mib_s $(rate "$t_import")"
echo "import_one_file_mib_s $(rate "$t_import1")   (ratio to raw seal: $(echo "scale=2; $(rate "$t_import1") / $seal" | bc -l))"
echo "cat_one_file_mib_s $(rate "$t_cat")   (ratio to raw open: $(echo "scale=2; $(rate "$t_cat") / $open" | bc -l))"
echo "cat_${n}_photos_mib_s $(rate "$t_cat_small")"
