//! The `lrmf` binary: see `lrmf --help`.
fn main() {}
