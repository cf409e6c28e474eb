//! The `elasticos-tools` Debian package (`cargo xtask deb` builds it beside the kernel's):
//! eosctl, libelastic as a shared library with its header and pkg-config file, the manual
//! pages, `elasticos-node.service` (brings the node up at boot from /etc/elasticos/node.conf)
//! and a sample config. Staged under out/deb/ and built with `dpkg-deb --root-owner-group`;
//! `check` lists what it must hold and links a program against it.

use crate::image;
use crate::util::{out_dir, project_root, run};
use anyhow::{bail, Context, Result};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's multiarch library directory for amd64.
const LIBDIR: &str = "usr/lib/x86_64-linux-gnu";
/// libelastic's ABI version (its soname is libelastic.so.1).
const SONAME_MAJOR: u32 = 1;

/// What the package must hold (checked after every build).
const CONTENTS: &[&str] = &[
    "./usr/sbin/eosctl",
    "./usr/lib/x86_64-linux-gnu/libelastic.so.1.0.0",
    "./usr/lib/x86_64-linux-gnu/libelastic.so.1",
    "./usr/lib/x86_64-linux-gnu/libelastic.so",
    "./usr/lib/x86_64-linux-gnu/pkgconfig/elastic.pc",
    "./usr/include/elastic.h",
    "./usr/share/man/man2/elastic_stretch.2.gz",
    "./usr/share/man/man2/elastic_jump.2.gz",
    "./usr/share/man/man2/elastic_ctl.2.gz",
    "./usr/share/man/man2/elastic_set_budget.2.gz",
    "./usr/share/man/man8/eosctl.8.gz",
    "./lib/systemd/system/elasticos-node.service",
    "./usr/share/doc/elasticos-tools/copyright",
    "./usr/share/doc/elasticos-tools/changelog.Debian.gz",
    "./usr/share/doc/elasticos-tools/examples/node.conf",
];

fn write(path: &Path, data: impl AsRef<[u8]>, mode: u32) -> Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// gzip -9n: reproducible (no name, no time stamp), as Debian wants manual pages and
/// changelogs.
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write as _;
    let mut child = Command::new("gzip")
        .args(["-9n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("gzip")?;
    child.stdin.take().unwrap().write_all(data)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gzip failed");
    }
    Ok(out.stdout)
}

/// Who the packages name as maintainer: `EOS_DEB_MAINTAINER` ("Name <email>"), else git's
/// user.name and user.email, else a placeholder at example.org (set one of the first two for
/// packages you publish).
pub fn maintainer() -> String {
    if let Ok(m) = std::env::var("EOS_DEB_MAINTAINER") {
        return m;
    }
    let git = |k: &str| {
        Command::new("git")
            .args(["config", k])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match (git("user.name"), git("user.email")) {
        (Some(n), Some(e)) => format!("{n} <{e}>"),
        _ => "ElasticOS developers <elasticos@example.org>".to_string(),
    }
}

/// The package's version: the workspace's, with a Debian revision.
fn version() -> Result<String> {
    let toml = fs::read_to_string(project_root().join("Cargo.toml"))?;
    let v = toml
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .context("no workspace version in Cargo.toml")?;
    Ok(format!("{v}-1"))
}

/// Builds out/elasticos-tools_VERSION_amd64.deb; returns its path.
pub fn tools_deb(maintainer: &str) -> Result<PathBuf> {
    let root = project_root();
    let version = version()?;
    let stage = out_dir().join("deb/elasticos-tools");
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(&stage)?;

    // eosctl: the static build the guest image uses.
    let bins = image::build_tools()?;
    write(
        &stage.join("usr/sbin/eosctl"),
        fs::read(bins.join("eosctl"))?,
        0o755,
    )?;
    run(Command::new("strip")
        .args(["--strip-unneeded", "--remove-section=.comment"])
        .arg(stage.join("usr/sbin/eosctl")))?;

    // libelastic: a shared library with a soname, its header and a pkg-config file.
    let lib = stage.join(LIBDIR);
    fs::create_dir_all(&lib)?;
    let real = format!("libelastic.so.{SONAME_MAJOR}.0.0");
    let mut cc = Command::new("gcc");
    cc.args([
        "-O2", "-g0", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
    ])
    .arg(format!("-Wl,-soname,libelastic.so.{SONAME_MAJOR}"))
    .args(["-Wl,-z,relro", "-Wl,-z,now", "-Wl,--as-needed"])
    .args(image::c_abi_flags()?)
    .arg("-o")
    .arg(lib.join(&real))
    .arg(root.join("tools/libelastic/elastic.c"));
    run(&mut cc)?;
    fs::set_permissions(lib.join(&real), fs::Permissions::from_mode(0o644))?;
    run(Command::new("strip")
        .args(["--strip-unneeded", "--remove-section=.comment"])
        .arg(lib.join(&real)))?;
    std::os::unix::fs::symlink(&real, lib.join(format!("libelastic.so.{SONAME_MAJOR}")))?;
    std::os::unix::fs::symlink(
        format!("libelastic.so.{SONAME_MAJOR}"),
        lib.join("libelastic.so"),
    )?;
    write(
        &stage.join("usr/include/elastic.h"),
        fs::read(root.join("tools/libelastic/elastic.h"))?,
        0o644,
    )?;
    let upstream = version.trim_end_matches("-1");
    write(
        &lib.join("pkgconfig/elastic.pc"),
        format!(
            "prefix=/usr\nlibdir=${{prefix}}/lib/x86_64-linux-gnu\nincludedir=${{prefix}}/include\n\n\
             Name: elastic\nDescription: ElasticOS system calls: stretch, jump, control\n\
             Version: {upstream}\nLibs: -L${{libdir}} -lelastic\nCflags: -I${{includedir}}\n"
        ),
        0o644,
    )?;

    // Manual pages: the syscalls' and eosctl's (made by eosctl from its own help).
    for page in ["elastic_stretch.2", "elastic_jump.2", "elastic_ctl.2"] {
        let src = fs::read(root.join("tools/libelastic/man").join(page))?;
        write(
            &stage.join("usr/share/man/man2").join(format!("{page}.gz")),
            gzip(&src)?,
            0o644,
        )?;
    }
    // The library functions elastic_ctl(2) documents, each findable by its own name.
    for f in ["elastic_set_budget", "elastic_mark", "elastic_set_sticky"] {
        write(
            &stage.join("usr/share/man/man2").join(format!("{f}.2.gz")),
            gzip(b".so man2/elastic_ctl.2\n")?,
            0o644,
        )?;
    }
    let man = Command::new(bins.join("eosctl")).arg("man").output()?;
    if !man.status.success() {
        bail!("eosctl man failed");
    }
    write(
        &stage.join("usr/share/man/man8/eosctl.8.gz"),
        gzip(&man.stdout)?,
        0o644,
    )?;

    // The node service, its sample config, the copyright and changelog.
    let deb = root.join("tools/debian");
    write(
        &stage.join("lib/systemd/system/elasticos-node.service"),
        fs::read(deb.join("elasticos-node.service"))?,
        0o644,
    )?;
    let doc = stage.join("usr/share/doc/elasticos-tools");
    write(
        &doc.join("examples/node.conf"),
        fs::read(deb.join("node.conf"))?,
        0o644,
    )?;
    write(
        &doc.join("copyright"),
        fs::read(deb.join("copyright"))?,
        0o644,
    )?;
    let date = String::from_utf8(Command::new("date").arg("-R").output()?.stdout)?;
    write(
        &doc.join("changelog.Debian.gz"),
        gzip(
            format!(
                "elasticos-tools ({version}) unstable; urgency=medium\n\n  * Built from the \
                 ElasticOS tree by `cargo xtask deb`.\n\n -- {maintainer}  {}\n",
                date.trim()
            )
            .as_bytes(),
        )?,
        0o644,
    )?;

    // Control files: the library's trigger, and the unit enabled on install (it starts only
    // once /etc/elasticos/node.conf exists).
    let ctl = stage.join("DEBIAN");
    let size_kib = dir_size(&stage)? / 1024;
    write(
        &ctl.join("control"),
        format!(
            "Package: elasticos-tools\nVersion: {version}\nArchitecture: amd64\n\
             Maintainer: {maintainer}\nInstalled-Size: {size_kib}\nDepends: libc6 (>= 2.34)\n\
             Recommends: linux-image-amd64 | linux-image\nSection: admin\nPriority: optional\n\
             Homepage: https://github.com/elasticos\n\
             Description: ElasticOS node tools: eosctl, libelastic, node service\n \
             ElasticOS lets a process whose memory outgrows one machine run on across\n \
             several: its address space stretches to other nodes, pages move between\n \
             them, and execution jumps to where its data is. This package holds eosctl\n \
             (node set-up and process control), libelastic (the system-call wrappers,\n \
             with header and pkg-config file), their manual pages, and\n \
             elasticos-node.service, which brings the node up at boot from\n \
             /etc/elasticos/node.conf. It needs a kernel built with ElasticOS.\n"
        ),
        0o644,
    )?;
    write(&ctl.join("triggers"), "activate-noawait ldconfig\n", 0o644)?;
    write(
        &ctl.join("shlibs"),
        format!("libelastic {SONAME_MAJOR} elasticos-tools (>= {upstream})\n"),
        0o644,
    )?;
    write(
        &ctl.join("postinst"),
        "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n\
         \tmkdir -p /etc/elasticos && chmod 0700 /etc/elasticos\n\
         \tif command -v deb-systemd-helper >/dev/null 2>&1; then\n\
         \t\tu=elasticos-node.service\n\
         \t\tif deb-systemd-helper debian-installed $u && ! deb-systemd-helper --quiet was-enabled $u; then\n\
         \t\t\tdeb-systemd-helper update-state $u >/dev/null || true\n\
         \t\telse\n\t\t\tdeb-systemd-helper enable $u >/dev/null || true\n\t\tfi\n\tfi\n\
         \tif [ -d /run/systemd/system ]; then\n\t\tsystemctl --system daemon-reload >/dev/null || true\n\tfi\nfi\n",
        0o755,
    )?;
    write(
        &ctl.join("postrm"),
        "#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then\n\
         \tsystemctl --system daemon-reload >/dev/null || true\nfi\n\
         if [ \"$1\" = purge ] && command -v deb-systemd-helper >/dev/null 2>&1; then\n\
         \tdeb-systemd-helper purge elasticos-node.service >/dev/null || true\nfi\n",
        0o755,
    )?;
    let out = project_root()
        .join("out")
        .join(format!("elasticos-tools_{version}_amd64.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&stage)
        .arg(&out))?;
    check(&out)?;
    Ok(out)
}

fn dir_size(p: &Path) -> Result<u64> {
    let mut n = 0;
    for e in fs::read_dir(p)? {
        let e = e?;
        let m = fs::symlink_metadata(e.path())?;
        n += if m.is_dir() {
            dir_size(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(n)
}

/// The package holds [`CONTENTS`], and a program built with its pkg-config file against its
/// header and library links (in the unpacked tree).
pub fn check(deb: &Path) -> Result<String> {
    let list = Command::new("dpkg-deb").arg("-c").arg(deb).output()?;
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    let names: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    for want in CONTENTS {
        if !names.contains(want) {
            bail!("{} lacks {want}:\n{list}", deb.display());
        }
    }
    let dir = out_dir().join("deb/check");
    let _ = fs::remove_dir_all(&dir);
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&dir))?;
    let pc = Command::new("pkg-config")
        .args(["--cflags", "--libs", "elastic"])
        .env("PKG_CONFIG_PATH", dir.join(LIBDIR).join("pkgconfig"))
        .env("PKG_CONFIG_SYSROOT_DIR", &dir)
        .output()
        .context("pkg-config (cargo xtask setup installs it)")?;
    if !pc.status.success() {
        bail!(
            "pkg-config elastic: {}",
            String::from_utf8_lossy(&pc.stderr)
        );
    }
    let flags = String::from_utf8(pc.stdout)?;
    let src = dir.join("probe.c");
    fs::write(
        &src,
        "#include <elastic.h>\nint main(void) { return elastic_jump(0, 0) == 0 ? 0 : 1; }\n",
    )?;
    let mut cc = Command::new("gcc");
    cc.arg("-o").arg(dir.join("probe")).arg(&src);
    cc.args(flags.split_whitespace());
    // The kernel's uapi header comes with linux-libc-dev on a real system.
    cc.args(image::c_abi_flags()?.into_iter().skip(2));
    run(&mut cc)?;
    let lintian = Command::new("lintian")
        .args([
            "--no-tag-display-limit",
            "--suppress-tags",
            "no-manual-page",
        ])
        .arg(deb)
        .output();
    let tags = match lintian {
        Ok(o) => {
            let t = String::from_utf8_lossy(&o.stdout).to_string();
            let count = |p: &str| t.lines().filter(|l| l.starts_with(p)).count();
            format!(
                "lintian: {} errors, {} warnings",
                count("E: "),
                count("W: ")
            )
        }
        Err(_) => "lintian not installed".to_string(),
    };
    Ok(format!(
        "{} files, pkg-config `{}` links a program against libelastic; {tags}",
        names.len(),
        flags.trim()
    ))
}
