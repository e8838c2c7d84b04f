//! File names that are not UTF-8, kept byte-exact.
//!
//! Linux names are bytes; the catalog and the view keep names as text. Old archives (tar and
//! rsync of folders written under Latin-1 locales) hold names that are not UTF-8, and a copy
//! into the mount and back must give the same bytes. So a name from the kernel is turned into
//! text reversibly: valid UTF-8 stays as it is, and each byte that is not part of valid UTF-8
//! becomes one character of a private-use block, U+F780 + (byte - 0x80) (the "UTF-8b" idea
//! that Python's surrogateescape also follows, with private-use characters because Rust text
//! cannot hold lone surrogates). A real name that itself contains one of those 128 private-use
//! characters has each byte of that character escaped the same way, so decoding gives back
//! exactly the bytes that came in: the mapping is one-to-one both ways.
//!
//! Names are shown escaped to people (`\xe9`) by [`for_people`], never as the private-use
//! characters.

/// The first of the 128 private-use characters that stand for the bytes 0x80..=0xFF.
const BASE: u32 = 0xF700;

/// Whether `c` stands for a byte of a name that is not UTF-8.
pub fn is_escape(c: char) -> bool {
    byte_of(c).is_some()
}

/// The byte that `c` stands for, if it is one of the escapes.
pub fn byte_of(c: char) -> Option<u8> {
    let v = (c as u32).checked_sub(BASE)?;
    (0x80..=0xFF).contains(&v).then_some(v as u8)
}

fn escape(byte: u8, out: &mut String) {
    // BASE + 0x80..=0xFF is in the Basic Multilingual Plane's private-use area: always a char
    out.push(char::from_u32(BASE + u32::from(byte)).unwrap_or(char::REPLACEMENT_CHARACTER));
}

/// The text a name given as bytes is kept as (see the module documentation).
pub fn from_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_escape(c) {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    escape(b, &mut out);
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            escape(b, &mut out);
        }
    }
    out
}

/// The bytes of a name kept as text: the inverse of [`from_bytes`].
pub fn to_bytes(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for c in name.chars() {
        if let Some(b) = byte_of(c) {
            out.push(b);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

/// The length in bytes of the name the kernel sees (what the 255-byte limit is about).
pub fn byte_len(name: &str) -> usize {
    name.chars()
        .map(|c| if is_escape(c) { 1 } else { c.len_utf8() })
        .sum()
}

/// The name for people to read: valid text as it is, other bytes as `\xNN`.
pub fn for_people(name: &str) -> String {
    if !name.chars().any(is_escape) {
        return name.to_string();
    }
    let bytes = to_bytes(name);
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_byte_exact() {
        let cases: [&[u8]; 7] = [
            b"plain.jpg",
            "caf\u{e9}.jpg".as_bytes(),
            b"caf\xe9.jpg",                // Latin-1
            b"\xff\xfe\x80",               // no UTF-8 at all
            b"half\xe2\x82.txt",           // a cut multi-byte sequence
            "\u{f7e9}real.txt".as_bytes(), // a real private-use character in the range
            "\u{f77f}\u{f800}".as_bytes(), // its neighbours, outside the range
        ];
        for bytes in cases {
            let text = from_bytes(bytes);
            assert_eq!(to_bytes(&text), bytes, "{text:?}");
            assert_eq!(byte_len(&text), bytes.len(), "{text:?}");
        }
        // valid UTF-8 without the private-use range is kept as it is
        assert_eq!(from_bytes("café.jpg".as_bytes()), "café.jpg");
        // distinct byte names stay distinct text
        assert_ne!(from_bytes(b"caf\xe9"), from_bytes("caf\u{e9}".as_bytes()));
        assert_ne!(from_bytes(b"\xef\x9f\xa9"), from_bytes(b"\xef\x9f"));
        assert_eq!(for_people(&from_bytes(b"caf\xe9.jpg")), "caf\\xe9.jpg");
        assert_eq!(for_people("café"), "café");
    }
}
