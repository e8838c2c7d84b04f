//! Operations on a whole store (DESIGN.md §12, "Operations"): `status`, `check` (a scrub),
//! `backup`, and changing the ways to unlock it. The domain logic lives here, taking domain
//! values and returning results; the command line (`cli::ops`) only parses and prints, so the
//! control socket can run the same code.

pub mod check;
