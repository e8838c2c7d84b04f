//! Issue 13, findings 5, 10 and 18: a descriptor keeps the file it opened. A reader of a file
//! that is replaced (temp file + rename, another user's save) reads the whole version it
//! opened; a file unlinked while open stays usable through its descriptors until the last
//! close; and a withdrawal cuts every descriptor off the same way (EACCES with a log line).
//! Real mounts, compared with what a local filesystem does.

mod common;

use common::mount::{os_user, run_as, Mount};
use common::{py, small_store};
use std::path::Path;
use std::process::Command;

/// Removing a photo needs a delete grant.
fn grant_delete(t: &common::TestStore) {
    t.ok(&[
        "user",
        "grant",
        "root",
        "--purpose",
        "website",
        "--access",
        "delete",
    ]);
}

/// Run `script` (Python) in `dir`: it prints one line with a descriptor open, then waits on
/// stdin. Anna's consent for the website is withdrawn, and once the mount has applied it the
/// script goes on. Returns its first line and the rest of its output.
fn withdraw_while_open(t: &common::TestStore, dir: &Path, script: &str) -> (String, String) {
    let mut child = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    child.wait().unwrap();
    (first.trim().to_string(), rest)
}

/// The bytes of test file number `seed` (not compressible, so no two versions look alike).
const CONTENT: &str = "def content(n, seed):\n    import hashlib\n    out = bytearray()\n    i = 0\n    while len(out) < n:\n        out += hashlib.sha256(b'%d-%d' % (seed, i)).digest()\n        i += 1\n    return bytes(out[:n])\n";

/// Finding 5: an fd that read 64 KiB of a 300,000-byte file, then saw a 100,000-byte file
/// renamed over it (rsync, editors), reads the whole 300,000 bytes it opened, with the content
/// it opened; the name gives the new file at once; a new open reads the new file.
#[test]
fn a_reader_keeps_the_whole_file_it_opened_when_a_save_replaces_it() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let out = py(
        &dir,
        &format!(
            "{CONTENT}
import os
open('big.bin', 'wb').write(content(300000, 1))
fd = os.open('big.bin', os.O_RDONLY)
first = os.read(fd, 65536)
with open('.big.bin.tmp', 'wb') as f:
    f.write(content(100000, 2))
os.rename('.big.bin.tmp', 'big.bin')
rest = b''
while True:
    b = os.read(fd, 1 << 20)
    if not b:
        break
    rest += b
whole = first + rest
print(len(whole), whole == content(300000, 1), os.fstat(fd).st_size)
os.close(fd)
print(os.stat('big.bin').st_size, open('big.bin', 'rb').read() == content(100000, 2))
"
        ),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "300000 True 300000",
        "the reader must read the whole version it opened: {out}"
    );
    assert_eq!(
        lines[1], "100000 True",
        "the name gives the new file: {out}"
    );
}

/// Finding 5, other users: another user's save of the same photo does not cut off a reader
/// in a view that was reading the old version; it reads that version whole, and a reopen
/// reads the new one.
#[test]
fn another_users_save_does_not_cut_off_a_reader() {
    let t = small_store("root");
    let (uid, gid) = os_user("cfs_reader13");
    t.add_user("cfs_reader13");
    t.ok(&[
        "user",
        "grant",
        "cfs_reader13",
        "--purpose",
        "website",
        "--access",
        "read",
    ]);
    let big = t.write(
        "shoot2/big.jpg",
        &(0..300_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    t.ok(&["import", big.parent().unwrap().to_str().unwrap()]);
    t.ok(&["mark", "big.jpg", "--no-persons"]);
    let m = Mount::start(&t);
    let theirs = m.path("cfs_reader13/website/big.jpg");
    let mine = m.path("root/website/big.jpg");
    // the reader reads 64 KiB, waits for the save, then reads the rest
    let script = format!(
        "import os, time
fd = os.open('{}', os.O_RDONLY)
first = os.read(fd, 65536)
open('/tmp/cfs_reader13.ready', 'w').close()
while not os.path.exists('/tmp/cfs_reader13.saved'):
    time.sleep(0.05)
time.sleep(1.5)
rest = b''
while True:
    b = os.read(fd, 1 << 20)
    if not b:
        break
    rest += b
whole = first + rest
print(len(whole), whole == bytes((i * 7 % 251) for i in range(300000)))
os.close(fd)
print(os.stat('{}').st_size)
",
        theirs.display(),
        theirs.display()
    );
    let _ = std::fs::remove_file("/tmp/cfs_reader13.ready");
    let _ = std::fs::remove_file("/tmp/cfs_reader13.saved");
    let reader = std::thread::spawn(move || {
        run_as(
            uid,
            gid,
            &format!("/usr/bin/python3 -c \"{}\"", script.replace('"', "\\\"")),
        )
    });
    let ready = common::mount::wait_for(std::time::Duration::from_secs(20), || {
        Path::new("/tmp/cfs_reader13.ready").exists()
    });
    assert!(ready.0, "the reader did not start");
    std::fs::write(&mine, vec![b'x'; 100_000]).unwrap();
    std::fs::write("/tmp/cfs_reader13.saved", b"").unwrap();
    let out = reader.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "300000 True", "the reader was cut off: {text}");
    assert_eq!(lines[1], "100000", "a new stat shows the save: {text}");
    let _ = std::fs::remove_file("/tmp/cfs_reader13.ready");
    let _ = std::fs::remove_file("/tmp/cfs_reader13.saved");
}

/// Finding 10: a file unlinked while open stays usable through its descriptor until the last
/// close: fstat, reads, writes and close succeed (Python's `tempfile.TemporaryFile`, which
/// creates, unlinks and then uses the file; SQLite's temp files do the same).
#[test]
fn an_unlinked_open_file_stays_usable_until_closed() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let out = py(
        &dir,
        "import os, tempfile
with tempfile.TemporaryFile(dir='.') as f:
    f.write(b'hello world' * 1000)
    f.flush()
    f.seek(0)
    print(len(f.read()), os.fstat(f.fileno()).st_size)
fd = os.open('kept.txt', os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, b'first line\\n')
os.fsync(fd)
os.unlink('kept.txt')
print(os.path.exists('kept.txt'))
st = os.fstat(fd)
print(st.st_size, st.st_nlink)
os.write(fd, b'second line\\n')
os.lseek(fd, 0, 0)
print(repr(os.read(fd, 100)))
os.close(fd)
print(sorted(os.listdir('.')))
",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "11000 11000", "TemporaryFile: {out}");
    assert_eq!(lines[1], "False", "the name is gone at once: {out}");
    assert_eq!(lines[2], "11 0", "fstat of the unlinked file: {out}");
    assert_eq!(
        lines[3], "b'first line\\nsecond line\\n'",
        "reads and writes through the descriptor: {out}"
    );
    assert!(!lines[4].contains("kept.txt"), "{out}");
    assert!(!lines[4].contains("tmp"), "no temp file left behind: {out}");
    // a photo unlinked while open: still readable until closed, then in the trash
    grant_delete(&t);
    let out = py(
        &dir,
        "import os
fd = os.open('a.jpg', os.O_RDONLY)
os.unlink('a.jpg')
print(os.fstat(fd).st_size, repr(os.read(fd, 100)))
os.close(fd)
",
    );
    assert_eq!(out.trim(), "13 b'photo of anna'", "{out}");
    let trash = t.ok(&["trash", "list"]).stdout;
    assert!(
        trash.contains("a.jpg"),
        "the photo is in the trash: {trash}"
    );
}

/// Finding 10 with consent: a photo unlinked while open is still cut off when its consent is
/// withdrawn (its descriptor reads EACCES), as every other descriptor is.
#[test]
fn an_unlinked_open_photo_is_still_cut_off_by_a_withdrawal() {
    let t = small_store("root");
    grant_delete(&t);
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let (first, rest) = withdraw_while_open(
        &t,
        &dir,
        "import os, sys, time
fd = os.open('a.jpg', os.O_RDONLY)
os.unlink('a.jpg')
print(repr(os.pread(fd, 100, 0)), flush=True)
sys.stdin.readline()
try:
    print(repr(os.pread(fd, 100, 0)))
except OSError as e:
    print('errno', e.errno)
",
    );
    assert_eq!(first, "b'photo of anna'");
    assert_eq!(rest.trim(), "errno 13", "after the withdrawal: {rest}");
}

/// Finding 18: a descriptor on a photo that was replaced by rsync's temp file + rename gets
/// EACCES after a withdrawal, with the same "denied" log line as any other descriptor (not
/// ENOENT with nothing logged).
#[test]
fn a_withdrawal_cuts_off_a_descriptor_of_a_replaced_photo_with_eacces() {
    let t = small_store("root");
    let m = Mount::start(&t);
    let dir = m.path("root/website");
    let (first, rest) = withdraw_while_open(
        &t,
        &dir,
        "import os, sys
old = open('a.jpg', 'rb').read()
with open('.a.jpg.XYZ', 'wb') as f:
    f.write(b'photo of anna, edited')
os.rename('.a.jpg.XYZ', 'a.jpg')
fd = os.open('a.jpg', os.O_RDONLY)
print(repr(os.pread(fd, 100, 0)), flush=True)
sys.stdin.readline()
for what in ('read', 'fstat', 'open'):
    try:
        if what == 'read':
            os.pread(fd, 100, 0)
        elif what == 'fstat':
            os.fstat(fd)
        else:
            os.open('a.jpg', os.O_RDONLY)
        print(what, 'ok')
    except OSError as e:
        print(what, 'errno', e.errno)
",
    );
    assert_eq!(first, "b'photo of anna, edited'");
    let lines: Vec<&str> = rest.lines().collect();
    assert_eq!(lines[0], "read errno 13", "{rest}");
    // the name is gone: a new open does not find it, like any hidden photo
    assert_eq!(lines[2], "open errno 2", "{rest}");
    let log = m.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("denied:") && l.contains("opened before it was hidden")),
        "the refusal is logged: {log}"
    );
}

/// Saves of one program within seconds are one version, updated in place (a new object under
/// the same number). Another user who read the photo between two such saves reads the newest
/// one when she opens it again, not the pages the kernel cached of the one before
/// (`contrib/attack/two-users-save.sh` found her reading the older save for seconds).
#[test]
fn another_users_fresh_open_reads_a_save_made_in_place() {
    let t = small_store("root");
    let reader = "cfs_reader14";
    let (uid, gid) = os_user(reader);
    t.add_user(reader);
    t.ok(&["user", "grant", reader, "--purpose", "website"]);
    let m = Mount::start(&t);
    let mine = m.path("root/website/hall.jpg");
    let theirs = m.path(&format!("{reader}/website/hall.jpg"));
    // one process saves twice, each time when told to on stdin
    let mut saver = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(format!(
            "import os, sys
for k in (1, 2):
    sys.stdin.readline()
    fd = os.open('{}', os.O_WRONLY | os.O_TRUNC)
    os.write(fd, bytes([k]) * 200000)
    os.close(fd)
    print('saved', flush=True)",
            mine.display()
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_saver = saver.stdin.take().unwrap();
    let mut from_saver = std::io::BufReader::new(saver.stdout.take().unwrap());
    let mut save = || {
        use std::io::{BufRead, Write};
        writeln!(to_saver).unwrap();
        let mut line = String::new();
        from_saver.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "saved");
    };
    // what the reader gets from a fresh open: its length and the bytes in it
    let read = || {
        let out = run_as(
            uid,
            gid,
            &format!(
                "/usr/bin/python3 -c \"d = open('{}', 'rb').read(); print(len(d), sorted(set(d)))\"",
                theirs.display()
            ),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let versions = || {
        t.ok(&["versions", "hall.jpg", "--json"])
            .json()
            .as_array()
            .map_or(0, Vec::len)
    };
    save();
    let (first, _) =
        common::mount::wait_for(std::time::Duration::from_secs(5), || read() == "200000 [1]");
    assert!(first, "the reader does not get the first save: {}", read());
    let before = versions();
    save();
    assert_eq!(
        versions(),
        before,
        "the second save updated the first in place"
    );
    let (second, _) =
        common::mount::wait_for(std::time::Duration::from_secs(5), || read() == "200000 [2]");
    assert!(second, "the reader's fresh opens still read: {}", read());
    drop(to_saver);
    assert!(saver.wait().unwrap().success());
}
