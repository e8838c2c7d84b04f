//! The process's logger: `env_logger` (`RUST_LOG`), with one message of the FUSE library put
//! in its place.
//!
//! When a program is interrupted by a signal in the middle of a request (a shell's Ctrl-C, a
//! background job ending), the kernel stops waiting for the answer; fuser then fails to send
//! it with ENOENT and logs "Failed to send FUSE reply" at error level. Nothing went wrong in
//! the filesystem, and an error line in the daemon's log makes an operator look for a fault
//! that is not there: that message is logged at debug level instead, saying what happened.
//! Every other failure to answer the kernel stays an error.

use log::{Level, Log, Metadata, Record};

/// The target of fuser's messages about sending answers.
const FUSER_REPLY: &str = "fuser::reply";

/// `inner`, with fuser's ENOENT on an answer logged at debug level.
pub struct Logger<L: Log>(pub L);

/// fuser's report (an error of [`FUSER_REPLY`]) of an answer the kernel no longer wanted.
fn is_discarded_answer(text: &str) -> bool {
    text.starts_with("Failed to send FUSE reply") && text.ends_with("(os error 2)")
}

impl<L: Log> Log for Logger<L> {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if record.level() == Level::Error && record.target().starts_with(FUSER_REPLY) {
            let text = record.args().to_string();
            if is_discarded_answer(&text) {
                self.0.log(
                    &Record::builder()
                        .level(Level::Debug)
                        .target(record.target())
                        .args(format_args!(
                            "the kernel discarded an answer: the program's request was interrupted by a signal ({text})"
                        ))
                        .build(),
                );
                return;
            }
        }
        self.0.log(record)
    }

    fn flush(&self) {
        self.0.flush()
    }
}

/// Install the logger: `RUST_LOG` if set, else `default_level`.
pub fn init(default_level: &str) {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
            .build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Logger(inner))).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Keeps (level, target, text) of what it is given.
    #[derive(Default)]
    struct Kept(Mutex<Vec<(Level, String, String)>>);

    impl Log for Kept {
        fn enabled(&self, _: &Metadata) -> bool {
            true
        }
        fn log(&self, r: &Record) {
            self.0
                .lock()
                .unwrap()
                .push((r.level(), r.target().to_string(), r.args().to_string()));
        }
        fn flush(&self) {}
    }

    fn send(logger: &Logger<Kept>, level: Level, target: &str, text: &str) {
        logger.log(
            &Record::builder()
                .level(level)
                .target(target)
                .args(format_args!("{text}"))
                .build(),
        );
    }

    #[test]
    fn an_answer_the_kernel_discarded_is_debug_and_other_failures_stay_errors() {
        let logger = Logger(Kept::default());
        let enoent = std::io::Error::from_raw_os_error(libc::ENOENT);
        let enodev = std::io::Error::from_raw_os_error(libc::ENODEV);
        send(
            &logger,
            Level::Error,
            "fuser::reply",
            &format!("Failed to send FUSE reply: {enoent}"),
        );
        send(
            &logger,
            Level::Error,
            "fuser::reply",
            &format!("Failed to send FUSE reply: {enodev}"),
        );
        send(
            &logger,
            Level::Error,
            "consentfs::vfs",
            &format!("Failed to send FUSE reply: {enoent}"),
        );
        send(&logger, Level::Info, "fuser::reply", "something else");
        let kept = logger.0 .0.lock().unwrap();
        let levels: Vec<Level> = kept.iter().map(|k| k.0).collect();
        assert_eq!(
            levels,
            [Level::Debug, Level::Error, Level::Error, Level::Info]
        );
        assert!(
            kept[0].2.contains("interrupted by a signal"),
            "{}",
            kept[0].2
        );
        assert!(kept[0].2.contains("os error 2"));
        assert_eq!(kept[1].2, format!("Failed to send FUSE reply: {enodev}"));
    }
}
