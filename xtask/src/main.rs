//! `cargo xtask`: experiment orchestration.
fn main() {}
