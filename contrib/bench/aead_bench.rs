//! Raw XChaCha20-Poly1305 speed on 64 KiB chunks, one core, in memory: the implementation the
//! store uses (OpenSSL's ChaCha20-Poly1305 under an HChaCha20 subkey, `consentfs::crypto::aead`)
//! against RustCrypto's `chacha20poly1305`, which sealed every object before and stays the
//! reference. Also the same OpenSSL path with a new `EVP_CIPHER_CTX` per chunk, to show what
//! keeping one context per thread saves. Run by `contrib/bench/aead.sh` (release build).
//!
//! Usage: aead_bench [MIB per round, default 256] [rounds, default 5]
//! Prints one line per implementation: the median MiB/s over the rounds for seal and open, per
//! second of this thread's CPU time (so the figure is per core even when other work shares the
//! machine), and by the wall clock.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use consentfs::crypto::aead::{open_in_place, seal_in_place};
use consentfs::crypto::{Key, NONCE_LEN, TAG_LEN};
use std::time::Instant;

/// CPU time this thread has used, in seconds.
fn cpu_now() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

const CHUNK: usize = 64 * 1024;

/// What the object format binds into each chunk: header (24) | index (8) | final flag (1).
fn aad(index: u64) -> [u8; 33] {
    let mut a = [0u8; 33];
    a[..4].copy_from_slice(b"CFSO");
    a[24..32].copy_from_slice(&index.to_be_bytes());
    a
}

/// A different nonce per chunk, as in the store (there they are random).
fn nonce(index: u64) -> [u8; NONCE_LEN] {
    let mut n = [0x5au8; NONCE_LEN];
    n[..8].copy_from_slice(&index.to_le_bytes());
    n[16..].copy_from_slice(&(!index).to_le_bytes());
    n
}

trait Impl {
    fn name(&self) -> &'static str;
    fn seal(&self, index: u64, buf: &mut [u8]) -> [u8; TAG_LEN];
    fn open(&self, index: u64, buf: &mut [u8], tag: &[u8; TAG_LEN]);
}

struct OpenSsl(Key);
impl Impl for OpenSsl {
    fn name(&self) -> &'static str {
        "openssl (consentfs::crypto::aead)"
    }
    fn seal(&self, index: u64, buf: &mut [u8]) -> [u8; TAG_LEN] {
        seal_in_place(&self.0, &nonce(index), &aad(index), buf).expect("seal")
    }
    fn open(&self, index: u64, buf: &mut [u8], tag: &[u8; TAG_LEN]) {
        open_in_place(&self.0, &nonce(index), &aad(index), buf, tag).expect("open")
    }
}

/// The same construction with a new OpenSSL context for every chunk.
struct OpenSslFreshCtx(Key);
impl OpenSslFreshCtx {
    fn ctx(&self, index: u64, seal: bool) -> openssl::cipher_ctx::CipherCtx {
        use chacha20::cipher::consts::U10;
        let n = nonce(index);
        let sub = chacha20::hchacha::<U10>(self.0.bytes().into(), n[..16].into());
        let mut iv = [0u8; 12];
        iv[4..].copy_from_slice(&n[16..]);
        let mut ctx = openssl::cipher_ctx::CipherCtx::new().expect("ctx");
        let c = openssl::cipher::Cipher::chacha20_poly1305();
        if seal {
            ctx.encrypt_init(Some(c), Some(&sub), Some(&iv))
        } else {
            ctx.decrypt_init(Some(c), Some(&sub), Some(&iv))
        }
        .expect("init");
        ctx
    }
}
impl Impl for OpenSslFreshCtx {
    fn name(&self) -> &'static str {
        "openssl, new context per chunk"
    }
    fn seal(&self, index: u64, buf: &mut [u8]) -> [u8; TAG_LEN] {
        let mut ctx = self.ctx(index, true);
        ctx.cipher_update(&aad(index), None).expect("aad");
        let n = buf.len();
        ctx.cipher_update_inplace(buf, n).expect("update");
        ctx.cipher_final(&mut []).expect("final");
        let mut tag = [0u8; TAG_LEN];
        ctx.tag(&mut tag).expect("tag");
        tag
    }
    fn open(&self, index: u64, buf: &mut [u8], tag: &[u8; TAG_LEN]) {
        let mut ctx = self.ctx(index, false);
        ctx.set_tag(tag).expect("tag");
        ctx.cipher_update(&aad(index), None).expect("aad");
        let n = buf.len();
        ctx.cipher_update_inplace(buf, n).expect("update");
        ctx.cipher_final(&mut []).expect("open");
    }
}

/// RustCrypto's XChaCha20-Poly1305 (the previous implementation, now the test reference).
struct RustCrypto(XChaCha20Poly1305);
impl Impl for RustCrypto {
    fn name(&self) -> &'static str {
        "rustcrypto chacha20poly1305"
    }
    fn seal(&self, index: u64, buf: &mut [u8]) -> [u8; TAG_LEN] {
        self.0
            .encrypt_in_place_detached(XNonce::from_slice(&nonce(index)), &aad(index), buf)
            .expect("seal")
            .into()
    }
    fn open(&self, index: u64, buf: &mut [u8], tag: &[u8; TAG_LEN]) {
        self.0
            .decrypt_in_place_detached(
                XNonce::from_slice(&nonce(index)),
                &aad(index),
                buf,
                tag.into(),
            )
            .expect("open")
    }
}

/// One round: seal `chunks` chunks, then open them again (newest first, so every open checks a
/// real tag); returns MiB/s for [seal by CPU time, open by CPU time, seal by wall, open by wall].
fn round(imp: &dyn Impl, chunks: u64, buf: &mut [u8]) -> [f64; 4] {
    let mib = (chunks as usize * CHUNK) as f64 / (1 << 20) as f64;
    let mut tags = Vec::with_capacity(chunks as usize);
    let (t, c) = (Instant::now(), cpu_now());
    for i in 0..chunks {
        tags.push(imp.seal(i, buf));
    }
    let (seal_wall, seal_cpu) = (t.elapsed().as_secs_f64(), cpu_now() - c);
    let (t, c) = (Instant::now(), cpu_now());
    for i in (0..chunks).rev() {
        imp.open(i, buf, &tags[i as usize]);
    }
    let (open_wall, open_cpu) = (t.elapsed().as_secs_f64(), cpu_now() - c);
    [
        mib / seal_cpu,
        mib / open_cpu,
        mib / seal_wall,
        mib / open_wall,
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let chunks = mib * 16;
    let key = Key::random();
    let impls: Vec<Box<dyn Impl>> = vec![
        Box::new(OpenSsl(key.clone())),
        Box::new(OpenSslFreshCtx(key.clone())),
        Box::new(RustCrypto(XChaCha20Poly1305::new(key.bytes().into()))),
    ];
    // every implementation must produce the same bytes, or the figures compare nothing
    let mut a = vec![3u8; CHUNK];
    let mut b = a.clone();
    let mut c = a.clone();
    let ta = impls[0].seal(7, &mut a);
    let tb = impls[1].seal(7, &mut b);
    let tc = impls[2].seal(7, &mut c);
    assert!(
        a == b && a == c && ta == tb && ta == tc,
        "implementations disagree"
    );

    println!("XChaCha20-Poly1305, 64 KiB chunks, one core, {mib} MiB x {rounds} rounds (median)");
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>10}",
        "MiB/s", "seal/cpu", "open/cpu", "seal/wall", "open/wall"
    );
    let mut buf = vec![0x42u8; CHUNK];
    for imp in &impls {
        round(imp.as_ref(), 64, &mut buf); // warm up: caches, frequency, first context
        let mut runs: [Vec<f64>; 4] = Default::default();
        for _ in 0..rounds {
            for (v, x) in runs.iter_mut().zip(round(imp.as_ref(), chunks, &mut buf)) {
                v.push(x);
            }
        }
        let [a, b, c, d] = runs.map(median);
        println!("{:<34} {a:>10.0} {b:>10.0} {c:>10.0} {d:>10.0}", imp.name());
    }
}
