//! `cargo xtask debian [--small]`: ElasticOS installed as a user installs it, on a real
//! Debian 12 guest. A minimal bookworm root file system made by Debian's own debootstrap
//! (cached under ~/.cache/elasticos/debian/), our kernel and tools packages installed into it
//! with dpkg, two VMs booted through the installed kernel and its initramfs, the nodes
//! brought up by systemd (`elasticos-node.service`) from their config files, and unmodified
//! Debian programs (python3, sort, perl, sqlite3) stretched across them, each checked against the same program run on one
//! node. `--small` (the test command's form): one program, and the manual pages.
//!
//! The guest's provisioning (what cloud-init would do on a real cluster) is a unit of this
//! test's own, `eos-guest.service`: it gives the NIC the address the kernel command line
//! names and picks the node's config file, before the node service runs.

use crate::cluster;
use crate::util::{out_dir, project_root, run, sh};
use crate::vm::{self, Boot, Vm};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What debootstrap adds to `minbase`: systemd as init, the initramfs tools our kernel
/// package's hook needs, and the programs the test runs.
const INCLUDE: &str = "systemd-sysv,udev,kmod,initramfs-tools,iproute2,procps,python3,sqlite3,\
                       man-db,less";
const MIRROR: &str = "http://deb.debian.org/debian";
/// Memory of each guest (MiB): systemd and python fit; the programs run under a budget.
const MEM_MIB: u32 = 512;

fn cache() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/elasticos/debian")
}

/// The bookworm base, as a tarball made once by debootstrap.
fn base_tarball() -> Result<PathBuf> {
    let tar = cache().join("bookworm-base.tar");
    if tar.exists() {
        return Ok(tar);
    }
    if sh("command -v debootstrap >/dev/null").is_err() {
        bail!("debootstrap is missing: run `cargo xtask setup`");
    }
    let dir = cache().join("bootstrap");
    let _ = sh(&format!("rm -rf {}", dir.display()));
    fs::create_dir_all(&dir)?;
    eprintln!(
        "debian: debootstrap bookworm (once; cached in {})",
        cache().display()
    );
    run(Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={INCLUDE}"),
            "bookworm",
        ])
        .arg(&dir)
        .arg(MIRROR))?;
    let tmp = tar.with_extension("tmp");
    run(Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&dir)
        .args(["-cf"])
        .arg(&tmp)
        .arg("."))?;
    fs::rename(&tmp, &tar)?;
    let _ = sh(&format!("rm -rf {}", dir.display()));
    Ok(tar)
}

fn put(root: &Path, rel: &str, body: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel.trim_start_matches('/'));
    fs::create_dir_all(p.parent().unwrap())?;
    fs::write(&p, body)?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Unmounts whatever `in_chroot` mounted under `root`.
fn unmount(root: &Path) {
    let r = root.display();
    let _ = sh(&format!(
        "for m in dev sys proc; do mountpoint -q {r}/$m && umount -l {r}/$m; done; true"
    ));
}

/// Runs `cmd` in the root file system with /proc, /sys and /dev mounted, as dpkg expects.
fn in_chroot(root: &Path, cmd: &str) -> Result<()> {
    let r = root.display();
    let mounts = format!(
        "mount -t proc proc {r}/proc && mount -t sysfs sys {r}/sys && mount --bind /dev {r}/dev"
    );
    if let Err(e) = sh(&mounts) {
        unmount(root);
        return Err(e);
    }
    let res = sh(&format!("chroot {r} /bin/sh -c '{cmd}'"));
    unmount(root);
    res
}

/// The guest's root file system with our packages installed by dpkg; returns the image and
/// the installed kernel and initramfs (copied out of /boot).
fn image(debs: &[PathBuf]) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let dir = out_dir().join("debian");
    let root = dir.join("root");
    unmount(&root);
    // --one-file-system: never into a bind mount left behind (the host's /dev).
    let _ = sh(&format!("rm -rf --one-file-system {}", root.display()));
    fs::create_dir_all(&root)?;
    run(Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&root)
        .arg("-xf")
        .arg(base_tarball()?))?;
    fs::create_dir_all(root.join("tmp/debs"))?;
    for d in debs {
        fs::copy(d, root.join("tmp/debs").join(d.file_name().unwrap()))?;
    }
    // The user's steps: install the packages, which run their own maintainer scripts
    // (the kernel's builds its initramfs; the tools' enables the node service).
    in_chroot(&root, "dpkg -i /tmp/debs/*.deb && rm -rf /tmp/debs")?;
    // Keys and a config per node, as an administrator writes them.
    let keys = dir.join("keys");
    let _ = fs::remove_dir_all(&keys);
    run(
        Command::new(project_root().join("target/guest/x86_64-unknown-linux-gnu/release/eosctl"))
            .args(["genkey", "--nodes", "1,2", "--out"])
            .arg(&keys),
    )?;
    for (me, other) in [(1, 2), (2, 1)] {
        let k = fs::read_to_string(keys.join(format!("node{me}.keys")))?;
        put(&root, &format!("etc/elasticos/node{me}.keys"), &k, 0o600)?;
        put(
            &root,
            &format!("etc/elasticos/node{me}.conf"),
            &format!(
                "id {me}\nlisten {}:{}\nkeys /etc/elasticos/node.keys\npeer {other}={}:{}\n",
                vm::ip(me),
                vm::PORT,
                vm::ip(other),
                vm::PORT
            ),
            0o600,
        )?;
    }
    // This test's provisioning: the address and the node's files, from the command line.
    put(
        &root,
        "usr/local/sbin/eos-guest",
        "#!/bin/sh\nset -e\nfor w in $(cat /proc/cmdline); do\n  case $w in\n    \
         eos.ip=*) ip=${w#eos.ip=} ;;\n    eos.node=*) node=${w#eos.node=} ;;\n  esac\ndone\n\
         for i in $(seq 60); do\n  nic=$(ls /sys/class/net | grep -v '^lo$' | head -1)\n  [ -n \"$nic\" ] && break\n  sleep 0.5\ndone\n\
         ip link set lo up\n\
         ip addr add \"$ip\" dev \"$nic\"\nip link set \"$nic\" up\n\
         cp /etc/elasticos/node$node.conf /etc/elasticos/node.conf\n\
         cp /etc/elasticos/node$node.keys /etc/elasticos/node.keys\n",
        0o755,
    )?;
    put(
        &root,
        "etc/systemd/system/eos-guest.service",
        "[Unit]\nDescription=Test provisioning: address and node config from the command line\n\
         After=systemd-udev-trigger.service systemd-udevd.service\n\
         Before=network-online.target elasticos-node.service\n\
         [Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/local/sbin/eos-guest\n\
         [Install]\nWantedBy=multi-user.target\n",
        0o644,
    )?;
    sh(&format!(
        "ln -sf /etc/systemd/system/eos-guest.service {}/etc/systemd/system/multi-user.target.wants/eos-guest.service",
        root.display()
    ))?;
    // A root shell on the serial console, which says when it is there.
    put(
        &root,
        "etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf",
        "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %I dumb\n",
        0o644,
    )?;
    put(
        &root,
        "root/.profile",
        "export TERM=dumb PAGER=cat MANPAGER=cat\nstty -echo 2>/dev/null\nPS1=''\necho EOS-\"\"READY\n",
        0o644,
    )?;
    put(&root, "etc/fstab", "/dev/vda / ext4 defaults 0 1\n", 0o644)?;
    put(&root, "etc/hostname", "eos-debian\n", 0o644)?;
    // Out of the image: the installed kernel and initramfs, to boot them directly.
    let find = |prefix: &str| -> Result<PathBuf> {
        fs::read_dir(root.join("boot"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .with_context(|| {
                format!("no /boot/{prefix}* in the guest: did the kernel package install?")
            })
    };
    let (kernel, initrd) = (find("vmlinuz-")?, find("initrd.img-")?);
    let (k, i) = (dir.join("vmlinuz"), dir.join("initrd.img"));
    fs::copy(&kernel, &k)?;
    fs::copy(&initrd, &i)?;
    let img = dir.join("root.img");
    let _ = fs::remove_file(&img);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "eos-root", "-d"])
        .arg(&root)
        .arg(&img)
        .arg("3G"))?;
    Ok((img, k, i))
}

/// A program's output at home without ElasticOS and stretched across both nodes (`budget`
/// MiB local): both must be the same.
struct Program {
    name: &'static str,
    /// Makes its input (run once, before either run).
    prepare: &'static str,
    /// The program (an unmodified Debian binary and its arguments); its output goes to the
    /// file given after it.
    cmd: &'static str,
    budget: u32,
}

const PROGRAMS: &[Program] = &[
    Program {
        name: "python3",
        prepare: "true",
        cmd: "python3 -c 'd = {i: str(i * i) for i in range(600000)}; print(len(d), sum(len(v) for v in d.values()))'",
        budget: 8,
    },
    Program {
        name: "sort",
        prepare: "seq 1 400000 | awk '{ print ($1 * 7919) % 400009 }' > /tmp/in.txt",
        cmd: "sort -n --parallel=1 -S 64M /tmp/in.txt",
        budget: 4,
    },
    // (gzip -9 was tried: its working set is under a MiB, so no budget makes it stretch.)
    Program {
        name: "perl",
        prepare: "true",
        // An array, walked in order (a hash's buckets would be a random walk over all of
        // its memory: every step a remote fault at this budget).
        cmd: "perl -e 'my @a = map { $_ * 3 } 1 .. 1000000; my $s = 0; $s += $_ for @a; print scalar(@a), \" $s\\n\"'",
        budget: 8,
    },
    Program {
        name: "sqlite3",
        prepare: "true",
        cmd: "sqlite3 :memory: 'create table t(a integer primary key, b text); with recursive c(x) as (select 1 union all select x + 1 from c where x < 200000) insert into t select x, hex(x * x) from c; select count(*), sum(length(b)), max(b) from t;'",
        budget: 4,
    },
];

fn md5(v: &mut Vm, file: &str) -> Result<String> {
    Ok(v.sh(&format!("md5sum < {file}"))?
        .split_whitespace()
        .find(|w| w.len() == 32)
        .unwrap_or("")
        .to_string())
}

/// The needle of the kernel's exit line of a stretched process named `comm`.
fn exit_needle(comm: &str) -> String {
    format!("({comm}) exited:")
}

/// How many exit lines of stretched processes named `comm` `console` holds (one per stretched
/// run: a process that never stretched has none).
fn exits(console: &str, comm: &str) -> usize {
    let needle = exit_needle(comm);
    console.lines().filter(|l| l.contains(&needle)).count()
}

fn run_program(a: &mut Vm, p: &Program) -> Result<String> {
    a.sh(p.prepare)?;
    let (rc, _) = a.run(
        &format!("{} > /tmp/local.out", p.cmd),
        Duration::from_secs(900),
    )?;
    if rc != 0 {
        bail!("{} on one node exited {rc}", p.name);
    }
    let want = md5(a, "/tmp/local.out")?;
    let before = exits(&a.console(), p.name);
    let start = Instant::now();
    let (rc, out) = a.run(
        &format!(
            "eosctl run --elastic --budget {} -- {} > /tmp/elastic.out",
            p.budget, p.cmd
        ),
        Duration::from_secs(1800),
    )?;
    let secs = start.elapsed().as_secs_f64();
    if rc != 0 {
        bail!("{} stretched exited {rc}:\n{out}", p.name);
    }
    let got = md5(a, "/tmp/elastic.out")?;
    std::thread::sleep(Duration::from_millis(300));
    let console = a.console();
    if got != want {
        bail!(
            "{}: stretched output differs from one node's (md5 {got} vs {want})",
            p.name
        );
    }
    if exits(&console, p.name) <= before {
        bail!("{} never stretched under a {} MiB budget", p.name, p.budget);
    }
    let exit = cluster::last_line(&console, &exit_needle(p.name))
        .and_then(|l| l.split("exited: ").nth(1))
        .unwrap_or("")
        .to_string();
    // Stretched is not enough: its pages must have moved (a stretch just before its exit
    // proves nothing).
    let none_moved = |m: cluster::Moved| m.pulls == 0 && m.pulled == 0 && m.pushes == 0;
    if cluster::exit_stats(&console, p.name).is_some_and(none_moved) {
        bail!("{} stretched, but no page moved: {exit}", p.name);
    }
    Ok(format!(
        "{}: same output stretched ({} MiB local, {secs:.0} s; {exit})",
        p.name, p.budget
    ))
}

/// The whole check; `small`: one program (python3) and the manual pages.
pub fn run_all(small: bool) -> Result<String> {
    let t0 = Instant::now();
    let (_tree, cluster) = cluster::build(MEM_MIB)?;
    // A hub of its own: the test suite's pair (same node ids and addresses) may still be up.
    let cluster = cluster.on_hub(10);
    let mut debs = crate::kernel::guest_debs()?;
    debs.push(crate::package::tools_deb(&crate::package::maintainer())?);
    let packaged = t0.elapsed().as_secs_f64();
    let (img, kernel, initrd) = image(&debs)?;
    let imaged = t0.elapsed().as_secs_f64();
    let mut vms = Vec::new();
    for id in [1usize, 2] {
        let disk = out_dir().join(format!("debian/node{id}.img"));
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(&img)
            .arg(&disk))?;
        let append = format!(
            // net.ifnames=0: the NIC stays eth0 (udev renames it otherwise, perhaps while the
            // provisioning unit configures it); kunit.enable=0 as on our own image.
            "root=/dev/vda rw console=ttyS0 panic=-1 no_timer_check net.ifnames=0 kunit.enable=0 \
             eos.ip={}/24 eos.node={id}",
            vm::ip(id)
        );
        let drive = format!("file={},format=raw,if=virtio", disk.display());
        let boot = Boot {
            kernel: &kernel,
            initrd: &initrd,
            append: &append,
            ready: "EOS-READY",
            timeout_s: 600,
        };
        vms.push(cluster.boot_guest(id, "debian", MEM_MIB, &["-drive", &drive], &boot)?);
    }
    let booted = t0.elapsed().as_secs_f64();
    let mut b = vms.pop().unwrap();
    let mut a = vms.pop().unwrap();
    let r = (|| -> Result<String> {
        let mut notes = Vec::new();
        let uname = a.sh("uname -r")?;
        let release = uname
            .lines()
            .map(str::trim)
            .find(|l| l.ends_with("-elasticos"))
            .with_context(|| format!("uname -r does not say elasticos:\n{uname}"))?
            .to_string();
        for v in [&mut a, &mut b] {
            // The console may come up before boot ends (serial-getty is Type=idle).
            let (_, state) = v.run(
                "systemctl is-system-running --wait",
                Duration::from_secs(300),
            )?;
            v.sh("systemctl is-active elasticos-node.service")
                .with_context(|| format!("system {}", state.trim()))?;
        }
        a.sh("eosctl wait 2 --timeout 120")?;
        b.sh("eosctl wait 1 --timeout 120")?;
        notes.push(format!(
            "two Debian 12 guests booted Linux {release} from the installed .deb and its initramfs; systemd brought both nodes up from /etc/elasticos/node.conf with pairwise keys"
        ));
        for page in ["2 elastic_stretch", "8 eosctl"] {
            let out = a.sh(&format!("man {page} | head -5"))?;
            if !out.to_lowercase().contains(page.split(' ').nth(1).unwrap()) {
                bail!("man {page} shows nothing:\n{out}");
            }
        }
        notes.push("`man 2 elastic_stretch` and `man 8 eosctl` work".into());
        let programs: Vec<&Program> = if small {
            PROGRAMS.iter().take(1).collect()
        } else {
            PROGRAMS.iter().collect()
        };
        for p in programs {
            notes.push(run_program(&mut a, p)?);
        }
        let mut trouble = a.trouble();
        trouble.extend(b.trouble());
        if !trouble.is_empty() {
            bail!("kernel trouble: {trouble:?}");
        }
        Ok(notes.join("; "))
    })();
    let mut trouble = a.poweroff();
    trouble.extend(b.poweroff());
    let note = r?;
    if !trouble.is_empty() {
        bail!("kernel trouble: {trouble:?}");
    }
    Ok(format!(
        "{note}; {:.0} s in all: {packaged:.0} s to package, {:.0} s to make the image, {:.0} s \
         to boot",
        t0.elapsed().as_secs_f64(),
        imaged - packaged,
        booted - imaged
    ))
}
