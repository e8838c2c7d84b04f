//! consentfs: an encrypted photo store whose every view shows, per user and purpose, only the
//! portraits the people on them consented to, right now. See DESIGN.md and README.md.

pub mod caller;
pub mod catalog;
pub mod cli;
pub mod crypto;
pub mod daemon;
pub mod domain;
pub mod error;
pub mod exiftool;
pub mod export;
pub mod faces;
pub mod files;
pub mod fuse;
pub mod inventory;
pub mod logging;
pub mod maintenance;
pub mod metadata;
pub mod mountinfo;
pub mod names;
pub mod pages;
pub mod policy;
pub mod portal;
pub mod rendition;
pub mod roles;
pub mod shred;
pub mod sidecar;
pub mod similar;
pub mod store;
pub mod thinning;
pub mod vfs;
pub mod view;
pub mod when;

/// Property tests' settings: `cases` cases (`PROPTEST_CASES` overrides), and the seeds of past
/// failures kept beside each test's source file (`NAME.proptest-regressions`), replayed first;
/// not in a folder at the top of the repository.
#[cfg(test)]
pub(crate) fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..proptest::test_runner::Config::default()
    }
}

pub use error::{Error, Result};
