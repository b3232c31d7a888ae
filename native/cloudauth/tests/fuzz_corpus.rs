//! Replays the fuzz corpora without a fuzzing engine (stable Rust, plain
//! `cargo test`): every file under `fuzz/corpus/<target>/` (the minimised
//! inputs the fuzzer found interesting) and `fuzz/artifacts/<target>/`
//! (inputs that once failed, kept as regressions) goes through the same
//! entry function the cargo-fuzz target calls, which asserts the target's
//! invariants. See fuzz/README.md.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

fn replay(target: &str, entry: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let corpus = files(&fuzz.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "no corpus for {target} in {}",
        fuzz.display()
    );
    let artifacts = files(&fuzz.join("artifacts").join(target));
    let mut failed = Vec::new();
    for file in corpus.iter().chain(&artifacts) {
        let data = std::fs::read(file).expect("a readable corpus file");
        if catch_unwind(AssertUnwindSafe(|| entry(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail (reproduce one with `cargo +nightly fuzz run {target} FILE`): {failed:#?}",
        failed.len(),
        corpus.len() + artifacts.len()
    );
}

#[test]
fn replay_frames() {
    replay("frames", cloudauth::fuzzing::frames);
}

#[test]
fn replay_tokens() {
    replay("tokens", cloudauth_core::fuzzing::tokens);
}

#[test]
fn replay_replies() {
    replay("replies", cloudauth_core::fuzzing::replies);
}

#[test]
fn replay_xcauth_conf() {
    replay("xcauth_conf", cloudauth::fuzzing::xcauth_conf);
}

#[test]
fn replay_domain_file() {
    replay("domain_file", cloudauth_core::fuzzing::domain_file);
}
