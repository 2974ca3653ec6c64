//! The CLI's integration tests, through the built `meta-bert` binary: one test binary (ripgrep's
//! layout), so that the helpers in `common` compile once and one executable is linked, not one
//! per file. Cargo.toml sets `autotests = false`: a new file here needs a `mod` line below.

mod common;

mod bad_input;
mod bench;
mod commands;
mod filesystems;
mod hub;
mod non_finite;
mod precision;
mod record;
mod resume;
