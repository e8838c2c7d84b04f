#!/usr/bin/env python3
"""The small files of the `tar x` benchmarks (smallfiles.sh, write.sh, requests.sh): FILES
files of 1-20 KiB of random bytes in 50 folders (`d00/img000.jpg` ...), from SEED, so that a
run can make another tree (the same bytes again would be copies: drafts made from them cost
consentfs more bookkeeping than new content).

Usage: small_tree.py DIR FILES SEED
"""
import os
import random
import sys

root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
per = max(1, n // 50)
for i in range(n):
    d = f"{root}/d{i // per:02}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/img{i % per:03}.jpg", "wb") as o:
        o.write(r.randbytes(r.randint(1024, 20480)))
