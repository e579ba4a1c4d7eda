//! Ctrl-C for the long commands (`lrmf train`, `cargo xtask repro`): the first interrupt sets a
//! stop flag, so the work finishes its current step and saves what it has; a second one exits at
//! once with code 130 (the saves are atomic, so the previous one stays valid).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Installs the process's Ctrl-C handler: the first interrupt sets `stop` and prints `message`
/// on stderr, the second exits with code 130. Errors when a handler is already installed.
pub fn install(stop: &Arc<AtomicBool>, message: &'static str) -> Result<(), ctrlc::Error> {
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\n{message}");
    })
}
