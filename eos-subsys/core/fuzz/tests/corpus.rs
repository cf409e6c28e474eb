//! The corpus through the checks, without libFuzzer (plain `cargo test`, stable): the seeds
//! as generated now, the committed corpus, and any file a fuzzing run left in
//! artifacts/<target>/ (a crash found once is replayed here after the fix).

use eos_core_fuzz::{frame, handshake, layout, peer, seeds};
use std::fs;
use std::path::{Path, PathBuf};

/// A target's check.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 4] = [
    ("frame", frame::check),
    ("handshake", handshake::check),
    ("layout", layout::check),
    ("peer", peer::check),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn corpus_and_artifacts_replay_clean() {
    for (target, check) in TARGETS {
        let mut n = 0;
        for dir in ["corpus", "artifacts"] {
            for f in files(&root().join(dir).join(target)) {
                let data = fs::read(&f).unwrap();
                let r = std::panic::catch_unwind(|| check(&data));
                assert!(r.is_ok(), "{} fails its check", f.display());
                n += 1;
            }
        }
        assert!(n > 0, "no corpus for {target}");
    }
}

#[test]
fn seeds_pass_their_checks() {
    for (target, name, data) in seeds::all() {
        let check = TARGETS.iter().find(|t| t.0 == target).unwrap().1;
        let r = std::panic::catch_unwind(|| check(&data));
        assert!(r.is_ok(), "seed {target}/{name} fails its check");
    }
}

/// Writes the seeds from `seeds::all()` as <dir>/<target>/seed-<name>, stale seeds removed:
/// `dir` is corpus/ (to refresh the committed seeds after a wire format change), or
/// `$EOS_FUZZ_SEED_DIR` (`cargo xtask fuzz` writes fresh ones to out/fuzz/seeds for each run,
/// so fuzzing starts from valid frames even while the committed seeds are stale).
#[test]
#[ignore]
fn write_seeds() {
    let dir =
        std::env::var_os("EOS_FUZZ_SEED_DIR").map_or_else(|| root().join("corpus"), PathBuf::from);
    for (target, _) in TARGETS {
        for f in files(&dir.join(target)) {
            if f.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
            {
                fs::remove_file(f).unwrap();
            }
        }
    }
    let mut total = 0;
    for (target, name, data) in seeds::all() {
        let d = dir.join(target);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("seed-{name}")), &data).unwrap();
        total += data.len();
    }
    assert!(
        total < 1 << 20,
        "the seeds are {total} bytes, keep them under 1 MiB"
    );
}
