//! `cairn chunkstore`: runs a chunk-store daemon from its config, or
//! initialises its data folder once (`init`).

use std::path::PathBuf;
use std::process::ExitCode;

use super::args::StoreAction;
use super::{config_error, init_logging, runtime};

/// `cairn chunkstore [init] --config FILE`.
pub(super) fn chunkstore(action: Option<StoreAction>, config: Option<PathBuf>) -> ExitCode {
    let Some(path) = config else {
        eprintln!(
            "cairn chunkstore: say which store: --config FILE (see config/examples/store.toml)"
        );
        return ExitCode::from(2);
    };
    let cfg = match cairn_config::StoreConfig::load(&path) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    match action {
        Some(StoreAction::Init) => match cairn_chunkstore::init(&cfg) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cairn chunkstore init: {e}");
                ExitCode::from(1)
            }
        },
        None => {
            init_logging(cfg.log.level.as_str(), cfg.log.format);
            super::spawn::exit_with_parent();
            match runtime().block_on(cairn_chunkstore::serve(cfg, |addr| {
                println!("cairn chunkstore listening on {addr}");
            })) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cairn chunkstore: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
