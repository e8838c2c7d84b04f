//! The mount table of this process's namespace, from /proc/self/mountinfo: the daemon's
//! preflight asks whether its mountpoint is already a mount; exports refuse a destination
//! inside a consentfs mount.

use std::path::PathBuf;

/// One line of the table, the fields we use.
pub struct MountEntry {
    /// The device, as `major:minor`.
    pub dev: String,
    pub point: PathBuf,
    pub fstype: String,
    pub source: String,
}

impl MountEntry {
    /// Ours: mounted with subtype (and source) `consentfs`.
    pub fn is_consentfs(&self) -> bool {
        self.fstype.ends_with(".consentfs") || self.source == "consentfs"
    }
}

/// Every mount; empty when the table cannot be read.
pub fn mounts() -> Vec<MountEntry> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            Some(MountEntry {
                dev: fields.get(2)?.to_string(),
                point: PathBuf::from(unescape(fields.get(4)?)),
                fstype: fields.get(sep + 1)?.to_string(),
                source: fields.get(sep + 2)?.to_string(),
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_are_undone() {
        assert_eq!(super::unescape("/mnt/my\\040photos"), "/mnt/my photos");
        assert_eq!(super::unescape("/foto's/überall"), "/foto's/überall");
        assert_eq!(super::unescape("/plain"), "/plain");
    }
}
