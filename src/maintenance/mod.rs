//! Operations on a whole store (DESIGN.md §12, "Operations"): `status`, `check` (a scrub),
//! `backup`, and changing the ways to unlock it. The domain logic lives here, taking domain
//! values and returning results; the command line (`cli::ops`) only parses and prints, so the
//! control socket can run the same code.

pub mod backup;
pub mod check;
pub mod keys;
pub mod status;

/// Where a long operation reports how far it is (a progress bar on a terminal).
pub trait Progress: Sync {
    /// `total` bytes are to be gone through.
    fn start(&self, total: u64);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

/// No progress shown.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
