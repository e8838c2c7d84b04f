//! Copies and files derived from photos, through a real mount with the real tools: a draft
//! carries the persons of what it was made from (the same bytes, or photos the writing process
//! read shortly before), so withdrawal reaches it, `why` says so, the person report lists it,
//! and it cannot be saved over a photo of other persons. CI runs these as root with /dev/fuse,
//! ImageMagick, exiftool, python3, darktable-cli and rawtherapee-cli.

mod common;

use common::mount::{wait_for, Mount};
use common::TestStore;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Anna on `ev/a.jpg`, Bob on `ev/b.jpg` (two real JPEGs), both consented to `website`; root
/// may delete (so write and read) there.
fn store() -> TestStore {
    let t = TestStore::new();
    let src = t.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for (name, gradient) in [
        ("a.jpg", "gradient:red-blue"),
        ("b.jpg", "gradient:green-white"),
    ] {
        let made = Command::new("convert")
            .args(["-size", "160x120", gradient])
            .arg(src.join(name))
            .status()
            .expect("ImageMagick convert (apt-get install imagemagick)");
        assert!(made.success());
    }
    t.ok(&["import", "--collection", "ev", src.to_str().unwrap()]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["person", "add", "Bob"]);
    t.ok(&["link", "ev/a.jpg", "Anna"]);
    t.ok(&["link", "ev/b.jpg", "Bob"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.ok(&["consent", "grant", "Bob", "--purpose", "website"]);
    t.add_user("root");
    t.ok(&[
        "user",
        "grant",
        "root",
        "--purpose",
        "website",
        "--access",
        "delete",
    ]);
    t
}

/// Run a shell script in `dir`, in a process group of its own as an interactive shell runs
/// each command; returns (success, stderr).
fn sh(dir: &Path, script: &str) -> (bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .process_group(0)
        .output()
        .expect("sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sh_ok(dir: &Path, script: &str) {
    let (ok, err) = sh(dir, script);
    assert!(ok, "`{script}` failed: {err}");
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

fn why(t: &TestStore, path: &str) -> serde_json::Value {
    t.ok(&[
        "why",
        path,
        "--user",
        "root",
        "--purpose",
        "website",
        "--json",
    ])
    .json()
}

/// A Python program that reads `src` and writes `dst` (other bytes: the photo upside down).
const PY_DERIVE: &str = "import sys\ndata = open(sys.argv[1], 'rb').read()\nopen(sys.argv[2], 'wb').write(data[::-1])\n";

#[test]
fn copies_and_tool_outputs_follow_the_consent_of_their_source() {
    let t = store();
    let m = Mount::start(&t);
    let d = m.path("root/website/ev");
    std::fs::write(t.path("derive.py"), PY_DERIVE).unwrap();
    let py = t.path("derive.py");
    sh_ok(&d, "cp a.jpg copy.jpg");
    sh_ok(&d, "convert a.jpg -resize 50% small.jpg");
    sh_ok(&d, &format!("python3 {} a.jpg flipped.jpg", py.display()));
    // exiftool's default save: the edit under the name, the original kept as a.jpg_original
    sh_ok(&d, "exiftool -q -Artist=Studio a.jpg");
    // a file written from scratch has no origin in the mount
    sh_ok(&d, "printf 'my notes' > notes.txt");
    let made = [
        "a.jpg",
        "a.jpg_original",
        "b.jpg",
        "copy.jpg",
        "flipped.jpg",
        "notes.txt",
        "small.jpg",
    ];
    assert_eq!(names(&d), made);
    let w = why(&t, "ev/copy.jpg");
    assert_eq!(w["visible"], true, "{w}");
    assert_eq!(w["reason"], "own_draft");

    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let want = ["b.jpg", "notes.txt"];
    let (gone, _) = wait_for(Duration::from_secs(5), || names(&d) == want);
    assert!(
        gone,
        "everything made from Anna's photo disappears with her consent: {:?}\n{}",
        names(&d),
        m.log_text()
    );
    for f in ["copy.jpg", "small.jpg", "flipped.jpg", "a.jpg"] {
        assert!(std::fs::read(d.join(f)).is_err(), "{f} is still readable");
    }
    // `why` and `ls` agree with the mount, and say why
    let w = why(&t, "ev/copy.jpg");
    assert_eq!(w["visible"], false, "{w}");
    assert_eq!(w["reason"], "from_source");
    let text = w["reason_text"].as_str().unwrap();
    assert!(
        text.contains("Anna") && text.contains("withdrew"),
        "why names the source's person: {text}"
    );
    let shown = common::visible(&t, "root", "website");
    assert_eq!(shown, ["ev/b.jpg", "ev/notes.txt"]);
    let human = t
        .ok(&[
            "why",
            "ev/small.jpg",
            "--user",
            "root",
            "--purpose",
            "website",
        ])
        .stdout;
    assert!(
        human.contains("HIDDEN") && human.contains("Anna"),
        "{human}"
    );

    // Anna's report lists the copies made from her photo
    let report = t.path("report-anna");
    t.ok(&["person", "report", "Anna", report.to_str().unwrap()]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("index.json")).unwrap()).unwrap();
    let paths: Vec<&str> = index["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    for f in ["ev/copy.jpg", "ev/small.jpg", "ev/flipped.jpg"] {
        assert!(paths.contains(&f), "{f} is in Anna's report: {paths:?}");
    }
    assert!(!paths.contains(&"ev/notes.txt"), "{paths:?}");

    // a new grant brings them back
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    let (back, _) = wait_for(Duration::from_secs(5), || names(&d) == made);
    assert!(back, "{:?}", names(&d));
}

#[test]
fn a_copy_cannot_become_another_persons_photo() {
    let t = store();
    let m = Mount::start(&t);
    let d = m.path("root/website/ev");
    let b_before = std::fs::read(d.join("b.jpg")).unwrap();
    // the attack of the issue: copy Anna, rename over Bob's photo
    sh_ok(&d, "cp a.jpg copy.jpg");
    let (ok, err) = sh(&d, "mv copy.jpg b.jpg");
    assert!(!ok, "mv of a copy of Anna over Bob's photo is refused");
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(std::fs::read(d.join("b.jpg")).unwrap(), b_before);
    assert_eq!(t.ok(&["cat", "ev/b.jpg"]).raw, b_before);
    // content from nowhere cannot replace a photo by a rename either
    sh_ok(&d, "printf 'unknown' > fresh.jpg");
    assert!(!sh(&d, "mv fresh.jpg b.jpg").0);
    // a collage of Anna and Bob saved over Anna's photo would publish Bob under Anna's consent
    std::fs::write(
        t.path("collage.py"),
        "import os\na = open('a.jpg','rb').read()\nb = open('b.jpg','rb').read()\nopen('tmp.jpg','wb').write(a + b)\nos.replace('tmp.jpg', 'a.jpg')\n",
    )
    .unwrap();
    assert!(!sh(&d, &format!("python3 {}", t.path("collage.py").display())).0);
    let log = m.log_text();
    assert!(log.contains("denied: saving draft"), "{log}");
    // saving an edit of the photo over the photo itself still works, as every editor does
    std::fs::write(
        t.path("edit.py"),
        "import os\na = open('a.jpg','rb').read()\nwith open('.a.jpg.tmp','wb') as f:\n  f.write(a + b'edited')\nos.replace('.a.jpg.tmp', 'a.jpg')\n",
    )
    .unwrap();
    sh_ok(&d, &format!("python3 {}", t.path("edit.py").display()));
    sh_ok(&d, "cp a.jpg again.jpg && mv again.jpg a.jpg");
    sh_ok(&d, "exiftool -q -overwrite_original -Artist=Studio a.jpg");
    let v = t.ok(&["versions", "ev/a.jpg", "--json"]).json();
    assert_eq!(v.as_array().unwrap().len(), 4, "three saves: {v}");
    assert!(t.ok(&["cat", "ev/a.jpg"]).raw.len() > 100);
    let x = Command::new("getfattr")
        .args(["--only-values", "-n", "user.consentfs.subjects"])
        .arg(d.join("a.jpg"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&x.stdout),
        "1",
        "still Anna's photo"
    );
}

/// Tools that are not everywhere: the test runs when the binary is installed (CI installs
/// darktable and rawtherapee) and says so when it is not.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

#[test]
fn raw_developers_outputs_follow_the_consent_of_their_source() {
    let tools: Vec<(&str, String)> = [
        (
            "darktable-cli",
            "darktable-cli a.jpg dt.jpg --core --configdir \"$HOME_DT\" >/dev/null 2>&1".to_string(),
        ),
        (
            "rawtherapee-cli",
            "rawtherapee-cli -q -Y -o rt.jpg -c a.jpg >/dev/null 2>&1".to_string(),
        ),
        (
            "gimp-console",
            "gimp-console -i -d -f -b '(let* ((img (car (gimp-file-load RUN-NONINTERACTIVE \"a.jpg\" \"a.jpg\"))) (d (car (gimp-image-get-active-drawable img)))) (gimp-image-crop img 80 60 0 0) (file-jpeg-save RUN-NONINTERACTIVE img (car (gimp-image-get-active-drawable img)) \"gimp.jpg\" \"gimp.jpg\" 0.9 0 0 0 \"\" 0 0 0 0))' -b '(gimp-quit 0)' >/dev/null 2>&1".to_string(),
        ),
    ]
    .into_iter()
    .filter(|(tool, _)| have(tool))
    .collect();
    if tools.is_empty() {
        return;
    }
    let t = store();
    let m = Mount::start(&t);
    let d = m.path("root/website/ev");
    let conf = t.path("dtconf");
    std::fs::create_dir_all(&conf).unwrap();
    let mut outputs = Vec::new();
    for (tool, script) in &tools {
        let script = script.replace("$HOME_DT", conf.to_str().unwrap());
        let (ok, err) = sh(&d, &format!("HOME={} {script}", t.path("").display()));
        assert!(ok, "{tool}: {err}");
        let out = match *tool {
            "darktable-cli" => "dt.jpg",
            "rawtherapee-cli" => "rt.jpg",
            _ => "gimp.jpg",
        };
        assert!(d.join(out).exists(), "{tool} wrote {out}: {:?}", names(&d));
        outputs.push(out);
    }
    t.ok(&["consent", "withdraw", "Anna", "--purpose", "website"]);
    let (gone, _) = wait_for(Duration::from_secs(5), || {
        outputs.iter().all(|o| !d.join(o).exists())
    });
    assert!(gone, "outputs stay after the withdrawal: {:?}", names(&d));
    for o in &outputs {
        let w = why(&t, &format!("ev/{o}"));
        assert_eq!(w["reason"], "from_source", "{o}: {w}");
    }
}
