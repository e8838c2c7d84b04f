#!/usr/bin/python3
"""Latencies for contrib/bench/scale.sh, on a mounted store.

withdraw TREE N: for N visible photos of TREE (a purpose folder of the mount), withdraw the
consent of one of its persons with the CLI and time from the command's exit until a stat of
the photo fails (the lookup the next program would make). Prints p50/p99/max in ms.

expiry TREE: take one visible photo, withdraw its first person's consent, grant it again
until a moment 3 s ahead, and time from that moment until a stat fails. Prints ms late.
"""
import os, subprocess, sys, time

BIN = os.environ["CONSENTFS_BIN"]


def visible(tree, n):
    """Up to n * 3 visible photos that have persons linked (photos marked as showing no one
    have nothing to withdraw)."""
    out = []
    for root, _dirs, files in os.walk(tree):
        for f in files:
            path = os.path.join(root, f)
            if persons(path):
                out.append(path)
                if len(out) >= n * 3:
                    return out
    return out


def persons(path):
    try:
        v = os.getxattr(path, "user.consentfs.subjects").decode()
    except OSError:
        return []
    return [p for p in v.split(",") if p]


def gone_after(path, limit=2.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            os.stat(path)
        except FileNotFoundError:
            return time.monotonic() - t0
        time.sleep(0.0002)
    return None


def cli(*args):
    subprocess.run([BIN, *args], check=True, stdout=subprocess.DEVNULL)


def withdraw(tree, n):
    purpose = os.path.basename(tree.rstrip("/"))
    lat, missed, used = [], 0, set()
    for path in visible(tree, n):
        if len(lat) + missed >= n:
            break
        ps = [p for p in persons(path) if p not in used]
        if not ps:
            continue
        used.update(ps)
        try:
            os.stat(path)
        except FileNotFoundError:
            continue  # hidden by an earlier withdrawal of a shared person
        cli("consent", "withdraw", ps[0], "--purpose", purpose)
        t = gone_after(path)
        if t is None:
            missed += 1  # e.g. a child's own withdrawal, which does not count under 16
        else:
            lat.append(t * 1000)
    lat.sort()
    if not lat:
        print("withdraw_tries 0")
        return
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
    print(f"withdraw_to_lookup_fails_ms p50 {q(0.5):.1f} p99 {q(0.99):.1f} max {lat[-1]:.1f} "
          f"tries {len(lat)} still_visible {missed}")


def expiry(tree):
    purpose = os.path.basename(tree.rstrip("/"))
    for path in visible(tree, 50):
        ps = persons(path)
        if len(ps) != 1:
            continue
        try:
            cli("consent", "withdraw", ps[0], "--purpose", purpose)
        except subprocess.CalledProcessError:
            continue
        if gone_after(path) is None:
            continue
        end = time.time() + 3
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
        end = int(end)  # the grant ends at the whole second written
        try:
            cli("consent", "grant", ps[0], "--purpose", purpose, "--until", until)
        except subprocess.CalledProcessError:
            continue  # a child under 16: only a guardian can grant
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2:
            try:
                os.stat(path)
                break
            except FileNotFoundError:
                time.sleep(0.005)
        else:
            continue
        while True:
            try:
                os.stat(path)
            except FileNotFoundError:
                print(f"expiry_hidden_ms_after_end {(time.time() - end) * 1000:.0f}")
                return
            if time.time() > end + 10:
                print("expiry_hidden_ms_after_end >10000")
                return
            time.sleep(0.002)
    print("expiry_hidden_ms_after_end (no photo with one person found)")


if __name__ == "__main__":
    if sys.argv[1] == "withdraw":
        withdraw(sys.argv[2], int(sys.argv[3]))
    else:
        expiry(sys.argv[2])
