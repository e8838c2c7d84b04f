#!/usr/bin/env bash
# Raw XChaCha20-Poly1305 seal/open speed on 64 KiB chunks, one core, in memory (release build):
# the implementation the store uses (OpenSSL's ChaCha20-Poly1305 under an HChaCha20 subkey),
# the same with a new OpenSSL context per chunk, and RustCrypto's chacha20poly1305 (the
# reference, which sealed every object before). See contrib/FORMAT.md, "Cipher".
# Usage: contrib/bench/aead.sh [MiB per round] [rounds]   (defaults 256, 5)
# The figures are per core: on a machine busy with other work, run it with nothing else going.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$here/target}
(cd "$here" && cargo build --release -q --example aead_bench)
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores," \
     "load $(cut -d' ' -f1 /proc/loadavg)"
# one core: pinned, so the figure is what one FUSE worker thread can do
exec taskset -c 0 "$target/release/examples/aead_bench" "${1:-256}" "${2:-5}"
