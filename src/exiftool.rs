//! A long-running `exiftool -stay_open` process: one Perl start for a whole export or import,
//! however many files. consentfs parses no image metadata itself; exiftool reads and writes
//! it (location stripping on export, the persons and face regions photographers' tools embed
//! on import).
//!
//! While the daemon acts for a caller of its control socket (`crate::caller`), exiftool runs
//! as that caller: it reads and writes the caller's files, with the caller's rights.

use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

pub struct Exiftool {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

/// How to get exiftool, for the messages of commands that need it.
pub const INSTALL: &str = "exiftool (Debian: apt-get install libimage-exiftool-perl)";

/// The most output one file's answer may have (a photo's whole metadata as JSON is a few
/// hundred KB at most); a hostile file cannot make consentfs hold more.
const MAX_ANSWER: usize = 16 << 20;

impl Exiftool {
    /// Start it; an error says that exiftool is missing (and how to get it).
    pub fn start() -> Result<Exiftool> {
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        let mut command = Command::new("exiftool");
        if let Some(c) = crate::caller::current() {
            // it reads and changes the caller's files: it runs as the caller, not as the daemon
            command.uid(c.uid).gid(c.gid);
        }
        let mut child = command
            .args(["-stay_open", "True", "-@", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io(format!("this needs {INSTALL}"), e))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::invalid("cannot talk to exiftool"));
        };
        Ok(Exiftool {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// Run one command: `args` (one per line), then the file. `None` for a path exiftool's
    /// argument file cannot carry (a newline in it). The answer is what exiftool printed.
    pub fn run(&mut self, args: &[&str], path: &Path) -> Result<Option<String>> {
        let p = path.to_string_lossy();
        if p.contains('\n') || args.iter().any(|a| a.contains('\n')) {
            return Ok(None);
        }
        let mut cmd = String::new();
        for a in args {
            cmd.push_str(a);
            cmd.push('\n');
        }
        cmd.push_str(&p);
        cmd.push_str("\n-execute\n");
        self.stdin
            .write_all(cmd.as_bytes())
            .and_then(|_| self.stdin.flush())
            .map_err(|e| Error::io("exiftool stopped", e))?;
        let mut out = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .stdout
                .read_line(&mut line)
                .map_err(|e| Error::io("exiftool stopped", e))?;
            if n == 0 {
                return Err(Error::invalid("exiftool stopped unexpectedly"));
            }
            if line.trim() == "{ready}" {
                break;
            }
            if out.len() + line.len() <= MAX_ANSWER {
                out.push_str(&line);
            }
        }
        Ok(Some(out))
    }

    /// Remove GPS tags (EXIF GPS IFD and XMP GPS) from the file in place. Ok(false) when the
    /// format is one exiftool cannot write.
    pub fn strip(&mut self, path: &Path) -> Result<bool> {
        let out = self.run(
            &["-overwrite_original", "-m", "-gps:all=", "-xmp:gps*="],
            path,
        )?;
        Ok(out.is_some_and(|out| {
            out.contains("1 image files updated") || out.contains("1 image files unchanged")
        }))
    }
}

impl Drop for Exiftool {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"-stay_open\nFalse\n");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}
