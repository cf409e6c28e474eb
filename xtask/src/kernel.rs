//! The kernel tree: pinned Debian source, our patch series, the subsystem copy, the config and
//! an incremental out-of-tree build, all under the cache folder (outside the clone).
//!
//! Incrementality matters more than anything here (a clean build is ~15 min, an incremental
//! one ~20 s), so files are only rewritten when their content changes: patches are applied to
//! copies of the affected files and synced back, and eos-subsys/ is synced the same way.

use crate::util::{cache_dir, project_root, run, sh};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where one kernel version's trees live.
#[derive(Clone)]
pub struct Tree {
    /// Kernel version from the tarball (e.g. 6.12.117).
    pub version: String,
    /// Unpacked, untouched tarball.
    pub pristine: PathBuf,
    /// Patched source tree (hard links to pristine for untouched files).
    pub src: PathBuf,
    /// `O=` build folder.
    pub build: PathBuf,
}

impl Tree {
    /// The built bzImage.
    pub fn bzimage(&self) -> PathBuf {
        self.build.join("arch/x86/boot/bzImage")
    }
}

fn pin() -> Result<(String, String)> {
    let text = fs::read_to_string(project_root().join("linux/VERSION"))?;
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
            .with_context(|| format!("linux/VERSION lacks {k}="))
    };
    Ok((get("package")?, get("version")?))
}

fn installed_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .ok()?;
    (out.status.success() && !out.stdout.is_empty())
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes sure the pinned source package is installed, falling back to the newest one.
fn ensure_source_package() -> Result<PathBuf> {
    let (package, version) = pin()?;
    let tarball = PathBuf::from("/usr/src/linux-source-6.12.tar.xz");
    match installed_version(&package) {
        Some(v) if v == version => return Ok(tarball),
        Some(v) => {
            eprintln!("xtask: installed {package} is {v}, pin is {version}; trying the pin");
        }
        None => {}
    }
    let pinned = format!("{package}={version}");
    if sh(&format!("apt-get install -y -q {pinned} >/dev/null")).is_err() {
        eprintln!(
            "xtask: WARNING: {pinned} is not available any more; falling back to the newest \
             {package}. Update linux/VERSION after checking the patches still apply."
        );
        sh(&format!(
            "apt-get update -q >/dev/null && apt-get install -y -q {package} >/dev/null"
        ))?;
    }
    if !tarball.exists() {
        bail!("{} missing after installing {package}", tarball.display());
    }
    Ok(tarball)
}

/// Unpacks the source (once per kernel version) and returns the tree paths.
pub fn tree() -> Result<Tree> {
    let tarball = ensure_source_package()?;
    let (_, pinned) = pin()?;
    let stamp = cache_dir().join("source-package");
    let base = cache_dir();
    let known = fs::read_to_string(&stamp).unwrap_or_default();
    let installed = installed_version("linux-source-6.12").unwrap_or(pinned);
    let version_dir = fs::read_dir(&base)
        .ok()
        .and_then(|mut d| {
            d.find_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().into_string().ok()?;
                (name.starts_with("linux-") && e.path().join("pristine/Makefile").exists())
                    .then(|| e.path())
            })
        })
        .filter(|_| known.trim() == installed);
    let dir = match version_dir {
        Some(d) => d,
        None => {
            eprintln!("xtask: unpacking {} (about 20 s)", tarball.display());
            let tmp = base.join("unpack.tmp");
            let _ = fs::remove_dir_all(&tmp);
            fs::create_dir_all(&tmp)?;
            run(Command::new("tar")
                .arg("xf")
                .arg(&tarball)
                .arg("-C")
                .arg(&tmp))?;
            let inner = tmp.join("linux-source-6.12");
            let v = String::from_utf8(
                Command::new("make")
                    .arg("-s")
                    .arg("kernelversion")
                    .current_dir(&inner)
                    .output()?
                    .stdout,
            )?
            .trim()
            .to_string();
            let dir = base.join(format!("linux-{v}"));
            let _ = fs::remove_dir_all(dir.join("pristine"));
            let _ = fs::remove_dir_all(dir.join("src"));
            fs::create_dir_all(&dir)?;
            fs::rename(&inner, dir.join("pristine"))?;
            fs::remove_dir_all(&tmp)?;
            // Hard links: untouched files share the pristine inode; we only ever replace files
            // (write + rename), never edit them in place.
            run(Command::new("cp")
                .arg("-al")
                .arg(dir.join("pristine"))
                .arg(dir.join("src")))?;
            fs::write(&stamp, &installed)?;
            dir
        }
    };
    let version = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("linux-"))
        .unwrap_or("unknown")
        .to_string();
    Ok(Tree {
        version,
        pristine: dir.join("pristine"),
        src: dir.join("src"),
        build: dir.join("build"),
    })
}

/// Writes `data` to `path` only if it differs (keeps mtimes, hence make, quiet).
fn sync_file(path: &Path, data: &[u8]) -> Result<bool> {
    if fs::read(path).ok().as_deref() == Some(data) {
        return Ok(false);
    }
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    let tmp = path.with_extension("xtask-tmp");
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path)?;
    Ok(true)
}

fn patch_files(patch: &Path) -> Result<Vec<String>> {
    Ok(fs::read_to_string(patch)?
        .lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .map(|l| l.split('\t').next().unwrap_or(l).trim().to_string())
        .collect())
}

/// Applies linux/patches/*.patch in order, touching only files whose result changed.
fn apply_patches(t: &Tree) -> Result<()> {
    let mut patches: Vec<PathBuf> = fs::read_dir(project_root().join("linux/patches"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    patches.sort();
    let mut files = BTreeSet::new();
    for p in &patches {
        files.extend(patch_files(p)?);
    }
    // Files patched last time but not now go back to pristine.
    let record = t.src.join(".elasticos-patched-files");
    let previous: BTreeSet<String> = fs::read_to_string(&record)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let scratch = cache_dir().join("patch.tmp");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    for f in &files {
        let src = t.pristine.join(f);
        if src.exists() {
            let dst = scratch.join(f);
            fs::create_dir_all(dst.parent().unwrap())?;
            fs::copy(&src, &dst)?;
        }
    }
    for p in &patches {
        let out = Command::new("patch")
            .args(["-p1", "--quiet", "--forward", "-d"])
            .arg(&scratch)
            .arg("-i")
            .arg(p)
            .output()?;
        if !out.status.success() {
            bail!(
                "patch {} does not apply:\n{}{}",
                p.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    for f in &files {
        sync_file(&t.src.join(f), &fs::read(scratch.join(f))?)?;
    }
    for f in previous.difference(&files) {
        let pristine = t.pristine.join(f);
        if pristine.exists() {
            sync_file(&t.src.join(f), &fs::read(pristine)?)?;
        } else {
            let _ = fs::remove_file(t.src.join(f));
        }
    }
    fs::write(&record, files.into_iter().collect::<Vec<_>>().join("\n"))?;
    fs::remove_dir_all(&scratch)?;
    Ok(())
}

/// Copies eos-subsys/ (kernel sources and the shared core) into the tree as elastic/, and its
/// include/ into the tree's include/.
fn sync_subsystem(t: &Tree) -> Result<()> {
    let from = project_root().join("eos-subsys");
    let to = t.src.join("elastic");
    let mut wanted = BTreeSet::new();
    let mut stack = vec![from.clone()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir)? {
            let p = e?.path();
            let rel = p.strip_prefix(&from)?.to_path_buf();
            let name = rel.to_string_lossy();
            // The kernel takes core/src; the host's build and fuzz trees stay out.
            if name.starts_with("core/target")
                || name.starts_with("core/fuzz")
                || name == "core/Cargo.toml"
                || name.ends_with(".lock")
            {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if rel.starts_with("include") {
                // The user-space ABI header goes where the kernel's own uapi headers are
                // (include/uapi/linux/), so headers_install and linux-libc-dev carry it.
                sync_file(&t.src.join(&rel), &fs::read(&p)?)?;
            } else {
                sync_file(&to.join(&rel), &fs::read(&p)?)?;
                wanted.insert(rel);
            }
        }
    }
    // Drop files that were deleted from eos-subsys/.
    let mut stack = vec![to.clone()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if !wanted.contains(p.strip_prefix(&to)?) {
                fs::remove_file(&p)?;
            }
        }
    }
    Ok(())
}

fn make(t: &Tree, args: &[&str]) -> Command {
    let mut c = Command::new("make");
    c.arg("-C")
        .arg(&t.src)
        .arg(format!("O={}", t.build.display()))
        .arg("LLVM=1")
        .args(args);
    c
}

/// Merges defconfig, kvm_guest.config and configs/elasticos.config; only rewrites .config
/// when the fragment changed, and checks every requested option took.
fn configure(t: &Tree) -> Result<()> {
    let fragment = project_root().join("configs/elasticos.config");
    let frag = fs::read(&fragment)?;
    let stamp = t.build.join(".elasticos-fragment");
    fs::create_dir_all(&t.build)?;
    if t.build.join(".config").exists() && fs::read(&stamp).ok().as_deref() == Some(&frag[..]) {
        return Ok(());
    }
    eprintln!("xtask: configuring kernel");
    run(&mut make(t, &["-s", "defconfig"]))?;
    run(&mut make(t, &["-s", "kvm_guest.config"]))?;
    run(Command::new(t.src.join("scripts/kconfig/merge_config.sh"))
        .args(["-m", "-O"])
        .arg(&t.build)
        .arg(t.build.join(".config"))
        .arg(&fragment)
        .stdout(std::process::Stdio::null()))?;
    run(&mut make(t, &["-s", "olddefconfig"]))?;
    let config = fs::read_to_string(t.build.join(".config"))?;
    for line in String::from_utf8_lossy(&frag).lines().map(str::trim) {
        let ok = if let Some(opt) = line
            .strip_prefix("# ")
            .and_then(|l| l.strip_suffix(" is not set"))
        {
            !config.lines().any(|l| l.starts_with(&format!("{opt}=")))
        } else if line.starts_with("CONFIG_") {
            config.lines().any(|l| l == line)
        } else {
            true
        };
        if !ok {
            bail!("kernel config did not take `{line}` (missing dependency or Rust toolchain?)");
        }
    }
    fs::write(&stamp, &frag)?;
    Ok(())
}

/// Prepares the tree and builds bzImage incrementally. Returns the tree.
pub fn build() -> Result<Tree> {
    // Once per xtask process: the patches and the subsystem are synced from the working tree
    // at its first build, and a test run's later steps (the image, bench, the Debian guest)
    // would each spend ~8 s on a make that finds nothing to do.
    static BUILT: std::sync::Mutex<Option<Tree>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = built.as_ref() {
        return Ok(t.clone());
    }
    let t = build_now()?;
    *built = Some(t.clone());
    Ok(t)
}

fn build_now() -> Result<Tree> {
    let t = tree()?;
    apply_patches(&t)?;
    sync_subsystem(&t)?;
    let rust_ok = make(&t, &["-s", "rustavailable"]).output()?;
    if !rust_ok.status.success() {
        bail!(
            "the kernel's Rust toolchain check failed; run `cargo xtask setup` first:\n{}",
            String::from_utf8_lossy(&rust_ok.stderr)
        );
    }
    configure(&t)?;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    eprintln!(
        "xtask: building kernel {} (-j{jobs}) in {}",
        t.version,
        t.build.display()
    );
    let start = std::time::Instant::now();
    let log = t.build.join("build.log");
    let mut child = make(&t, &[&format!("-j{jobs}"), "bzImage"])
        .stdout(fs::File::create(&log)?)
        .stderr(fs::File::options().append(true).open(&log)?)
        .spawn()?;
    let status = progress(&t, &log, start, &mut child)?;
    if !status.success() {
        let text = fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
        bail!("kernel build failed (full log: {})", log.display());
    }
    let warnings = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("warning:") && l.contains("elastic/"))
        .count();
    if warnings > 0 {
        bail!(
            "the ElasticOS subsystem built with {warnings} warnings; see {}",
            log.display()
        );
    }
    eprintln!(
        "xtask: kernel ready in {:.0} s: {}",
        start.elapsed().as_secs_f64(),
        t.bzimage().display()
    );
    Ok(t)
}

/// Steps a clean build of this tree takes (compile, assemble, link lines of its log),
/// measured; the first build's estimate uses this.
const CLEAN_BUILD_STEPS: usize = 2850;

/// Waits for the kernel build, printing every 30 s how far it is (steps done of those a
/// clean build takes, and an estimate of the time left), so a 15-minute build is not silent.
fn progress(
    t: &Tree,
    log: &Path,
    start: std::time::Instant,
    child: &mut std::process::Child,
) -> Result<std::process::ExitStatus> {
    let record = t.build.join(".elasticos-build-steps");
    let total = fs::read_to_string(&record)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(CLEAN_BUILD_STEPS);
    let steps = || {
        fs::read_to_string(log).map_or(0, |text| {
            text.lines()
                .filter(|l| {
                    let w = l.trim_start();
                    l.starts_with("  ")
                        && ["CC ", "AS ", "RUSTC ", "LD ", "AR ", "BINDGEN "]
                            .iter()
                            .any(|p| w.starts_with(p))
                })
                .count()
        })
    };
    let mut last = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let done = steps();
            // A build that did nearly everything was a clean one: its count is the total.
            if status.success() && done > total / 2 {
                let _ = fs::write(&record, done.to_string());
            }
            return Ok(status);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        if last.elapsed().as_secs() >= 30 {
            last = std::time::Instant::now();
            let done = steps();
            let secs = start.elapsed().as_secs();
            let frac = (done as f64 / total as f64).min(0.99);
            let left = if frac > 0.05 {
                format!(
                    ", about {} min left",
                    ((secs as f64 / frac) * (1.0 - frac) / 60.0).ceil()
                )
            } else {
                String::new()
            };
            eprintln!(
                "xtask: kernel build: {done} of ~{total} steps ({:.0}%), {} min {} s{left}",
                frac * 100.0,
                secs / 60,
                secs % 60
            );
        }
    }
}

/// `make bindeb-pkg` with `profiles` (Debian build profiles, e.g. to leave the headers out)
/// and `compress` (dpkg-deb's `-Z`: `None` for its default, xz): the kernel packages, moved
/// to out/; their paths.
fn bindeb(profiles: &str, compress: Option<&str>) -> Result<Vec<PathBuf>> {
    let t = build()?;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    // Package metadata: the maintainer (mkdebian reads DEBFULLNAME/DEBEMAIL; it would
    // otherwise make up `root <root@host>`), and a Debian revision that says what it is.
    let maintainer = crate::package::maintainer();
    let (name, email) = maintainer
        .rsplit_once('<')
        .map(|(n, e)| (n.trim().to_string(), e.trim_end_matches('>').to_string()))
        .unwrap_or((maintainer.clone(), String::new()));
    let mut cmd = make(
        &t,
        &[
            &format!("-j{jobs}"),
            &format!("KDEB_PKGVERSION={}-1elasticos", t.version),
            "KDEB_SOURCENAME=linux-elasticos",
            "bindeb-pkg",
        ],
    );
    cmd.env("DEBFULLNAME", name)
        .env("DEBEMAIL", email)
        .env("DEB_BUILD_PROFILES", profiles);
    if let Some(c) = compress {
        cmd.env("KDEB_COMPRESS", c);
    }
    run(&mut cmd)?;
    let out = project_root().join("out");
    fs::create_dir_all(&out)?;
    let parent = t.build.parent().unwrap();
    let mut debs = Vec::new();
    for e in fs::read_dir(parent)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "deb") {
            let dst = out.join(p.file_name().unwrap());
            crate::util::move_file(&p, &dst)?;
            debs.push(dst);
        }
    }
    Ok(debs)
}

/// `cargo xtask deb`: the kernel packages (image, headers, libc-dev) and elasticos-tools,
/// in out/.
pub fn deb() -> Result<()> {
    for d in bindeb("", None)? {
        println!("{}", d.display());
    }
    println!(
        "{}",
        crate::package::tools_deb(&crate::package::maintainer())?.display()
    );
    Ok(())
}

/// The kernel image package alone (no headers, no debug symbols: a guest needs neither),
/// for the Debian guest test. Uncompressed: the same files as `cargo xtask deb`'s package,
/// without xz's half a minute of compressing for a guest that unpacks it once.
pub fn guest_debs() -> Result<Vec<PathBuf>> {
    let debs = bindeb(
        "pkg.linux-elasticos.nokernelheaders pkg.linux-elasticos.nokerneldbg",
        Some("none"),
    )?;
    let image: Vec<PathBuf> = debs
        .into_iter()
        .filter(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("linux-image-"))
        })
        .collect();
    if image.is_empty() {
        bail!("bindeb-pkg made no linux-image package");
    }
    Ok(image)
}
