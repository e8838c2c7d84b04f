//! The `consentfs` binary: parse the command line and hand over to `consentfs::cli`.

use clap::Parser;

fn main() {
    let cli = consentfs::cli::Cli::parse();
    let level = consentfs::cli::default_log_level(&cli);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let code = match consentfs::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("consentfs: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
