//! `cargo xtask bench [--quick] [--reps N] [--mem MiB]`: the five workloads at about 1.5x and
//! 3x one VM's memory under each configuration, interleaved so machine noise cancels in the
//! ratios. Every run's checksum must match the `limit` run of the same input, else the row is
//! marked failed. Results: out/bench/results.csv, docs/BENCHMARKS.md (with `--write-docs`) and
//! SVG plots in docs/bench/.
//!
//! Configurations (each in its own VM(s) of our kernel, all booted once per bench):
//! - `limit`: one VM with memory for the whole footprint (the physical best case);
//! - `local-swap`: swap on a local virtio disk, VM memory as given;
//! - `zram`: compressed RAM swap, VM memory as given;
//! - `nbd-swap`: swap on an NBD device exported by a peer VM (nbd-server, over the same
//!   virtual network), the original ElasticOS paper's baseline;
//! - `elasticos`: ElasticOS pull/push (no jump yet: issue 4), the process marked elastic with
//!   the same local memory, its peer VM holding the rest.
//!
//! The ElasticOS-with-jump column joins when jump exists; it is never estimated.

use crate::util::{out_dir, project_root};
use crate::vm::{self, Cluster, Vm};
use crate::{image, kernel};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// One configuration's VM(s).
struct Config {
    name: &'static str,
    vm: Vm,
    /// The NBD server VM, kept alive while the client runs.
    _server: Option<Vm>,
}

/// One measured run.
#[derive(Clone)]
struct Row {
    rep: u32,
    workload: String,
    footprint_mib: u32,
    config: String,
    wall_s: f64,
    checksum: String,
    ok: bool,
    swap_in_pages: u64,
    swap_out_pages: u64,
    net_bytes: u64,
    peak_rss_kib: u64,
}

fn counters(v: &mut Vm) -> Result<(u64, u64, u64)> {
    let out = v.sh(
        "grep -E '^pswp(in|out) ' /proc/vmstat; cat /sys/class/net/eth0/statistics/rx_bytes \
         /sys/class/net/eth0/statistics/tx_bytes",
    )?;
    let mut pin = 0;
    let mut pout = 0;
    let mut net = 0;
    for l in out.lines() {
        let mut w = l.split_whitespace();
        match (w.next(), w.next()) {
            (Some("pswpin"), Some(n)) => pin = n.parse().unwrap_or(0),
            (Some("pswpout"), Some(n)) => pout = n.parse().unwrap_or(0),
            (Some(n), None) => net += n.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
    Ok((pin, pout, net))
}

fn boot_configs(cluster: &Cluster, mem: u32, max_fp: u32) -> Result<Vec<Config>> {
    let swap_mib = 2 * max_fp + 64;
    let dir = out_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let mut configs = Vec::new();

    let limit = cluster.boot_with(3, "bench-limit", max_fp + 256, &[])?;
    configs.push(Config {
        name: "limit",
        vm: limit,
        _server: None,
    });

    let disk = dir.join("swap.img");
    let _ = std::fs::remove_file(&disk);
    // A sparse raw image: the guest sees a disk of `swap_mib`, the host stores what is written.
    std::fs::File::create(&disk)?.set_len((swap_mib as u64) << 20)?;
    let drive = format!(
        "file={},format=raw,if=virtio,cache=none,aio=threads",
        disk.display()
    );
    let mut local = cluster.boot_with(4, "bench-localswap", mem, &["-drive", &drive])?;
    local.sh("mkswap /dev/vda >/dev/null && swapon /dev/vda")?;
    configs.push(Config {
        name: "local-swap",
        vm: local,
        _server: None,
    });

    let mut z = cluster.boot_with(5, "bench-zram", mem, &[])?;
    z.sh(&format!(
        "echo {swap_mib}M > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0"
    ))?;
    configs.push(Config {
        name: "zram",
        vm: z,
        _server: None,
    });

    let mut server = cluster.boot_with(2, "bench-nbdserver", swap_mib + 192, &[])?;
    server.sh(&format!(
        "dd if=/dev/zero of=/tmp/swap.img bs=1M count=0 seek={swap_mib} 2>/dev/null && \
         nbd-server 10809 /tmp/swap.img -C /dev/null >/dev/null 2>&1"
    ))?;
    let mut client = cluster.boot_with(1, "bench-nbdclient", mem, &[])?;
    client.sh(&format!(
        "nbd-client {} 10809 /dev/nbd0 -N '' >/dev/null 2>&1 || nbd-client {} 10809 /dev/nbd0 >/dev/null; \
         mkswap /dev/nbd0 >/dev/null && swapon /dev/nbd0",
        vm::ip(2),
        vm::ip(2)
    ))?;
    configs.push(Config {
        name: "nbd-swap",
        vm: client,
        _server: Some(server),
    });

    // ElasticOS, pull/push only (jump does not exist yet): node 6 runs the workload marked
    // elastic with `mem` MiB, node 7 has room for the rest.
    let mut peer = cluster.boot_with(7, "bench-eos-peer", swap_mib + 192, &[])?;
    let mut home = cluster.boot_with(6, "bench-eos-home", mem, &[])?;
    crate::tests::up(&mut peer, 7, &[6], crate::tests::SECRET)?;
    crate::tests::up(&mut home, 6, &[7], crate::tests::SECRET)?;
    home.sh("eosctl wait 7 --timeout 60")?;
    configs.push(Config {
        name: "elasticos",
        vm: home,
        _server: Some(peer),
    });

    for c in configs.iter_mut() {
        let s = c.vm.sh("free -m | sed -n 2,3p")?;
        eprintln!(
            "bench: {} ready: {}",
            c.name,
            s.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    Ok(configs)
}

fn run_one(c: &mut Config, workload: &str, fp: u32, rep: u32) -> Result<Row> {
    let (i0, o0, n0) = counters(&mut c.vm)?;
    let start = Instant::now();
    let cmd = if c.name == "elasticos" {
        format!("eosctl run --elastic -- {workload} {fp}")
    } else {
        format!("{workload} {fp}")
    };
    let (rc, out) = c.vm.run(&cmd, Duration::from_secs(3600))?;
    let wall_s = start.elapsed().as_secs_f64();
    let (i1, o1, n1) = counters(&mut c.vm)?;
    let result = out.lines().find(|l| l.starts_with("RESULT "));
    let checksum = result
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("checksum="))
        })
        .unwrap_or("-")
        .to_string();
    let peak = out
        .lines()
        .find(|l| l.starts_with("TIME "))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("peak_rss_kib="))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(Row {
        rep,
        workload: workload.to_string(),
        footprint_mib: fp,
        config: c.name.to_string(),
        wall_s,
        ok: rc == 0 && result.is_some(),
        checksum,
        swap_in_pages: i1.saturating_sub(i0),
        swap_out_pages: o1.saturating_sub(o0),
        net_bytes: n1.saturating_sub(n0),
        peak_rss_kib: peak,
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Marks rows whose checksum differs from the limit run of the same input.
fn verify(rows: &mut [Row]) {
    let truth: BTreeMap<(String, u32), String> = rows
        .iter()
        .filter(|r| r.config == "limit" && r.ok)
        .map(|r| ((r.workload.clone(), r.footprint_mib), r.checksum.clone()))
        .collect();
    for r in rows.iter_mut() {
        let want = truth.get(&(r.workload.clone(), r.footprint_mib));
        if want != Some(&r.checksum) {
            r.ok = false;
        }
    }
}

fn csv(rows: &[Row]) -> String {
    let mut s = String::from(
        "rep,workload,footprint_mib,config,wall_s,checksum,ok,swap_in_pages,swap_out_pages,net_bytes,peak_rss_kib\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{:.3},{},{},{},{},{},{}",
            r.rep,
            r.workload,
            r.footprint_mib,
            r.config,
            r.wall_s,
            r.checksum,
            r.ok,
            r.swap_in_pages,
            r.swap_out_pages,
            r.net_bytes,
            r.peak_rss_kib
        );
    }
    s
}

type Key = (String, u32, String);

/// (workload, footprint, config) -> (median, min, max, all ok, median swap pages, median net MiB)
fn summarize(rows: &[Row]) -> BTreeMap<Key, (f64, f64, f64, bool, u64, f64)> {
    let mut groups: BTreeMap<Key, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r.workload.clone(), r.footprint_mib, r.config.clone()))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|(k, rs)| {
            let mut t: Vec<f64> = rs.iter().map(|r| r.wall_s).collect();
            let (min, max) = t
                .iter()
                .fold((f64::MAX, 0f64), |(a, b), x| (a.min(*x), b.max(*x)));
            let ok = rs.iter().all(|r| r.ok);
            let mut sw: Vec<f64> = rs
                .iter()
                .map(|r| (r.swap_in_pages + r.swap_out_pages) as f64)
                .collect();
            let mut net: Vec<f64> = rs.iter().map(|r| r.net_bytes as f64 / 1048576.0).collect();
            (
                k,
                (
                    median(&mut t),
                    min,
                    max,
                    ok,
                    median(&mut sw) as u64,
                    median(&mut net),
                ),
            )
        })
        .collect()
}

fn svg_bars(title: &str, groups: &[(String, Vec<(String, f64)>)], unit: &str) -> String {
    let colors = [
        "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860",
    ];
    let max = groups
        .iter()
        .flat_map(|(_, b)| b.iter().map(|(_, v)| *v))
        .fold(0f64, f64::max)
        .max(1e-9);
    let bar_w = 14.0;
    let group_w = groups.first().map_or(1, |g| g.1.len()) as f64 * bar_w + 20.0;
    let width = 80.0 + group_w * groups.len() as f64 + 160.0;
    let height = 320.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <text x=\"10\" y=\"18\" font-size=\"14\">{title}</text>\n\
         <line x1=\"60\" y1=\"260\" x2=\"{:.0}\" y2=\"260\" stroke=\"black\"/>\n\
         <text x=\"10\" y=\"40\">{max:.1} {unit}</text>\n",
        width - 160.0
    );
    let mut legend: Vec<String> = Vec::new();
    for (gi, (label, bars)) in groups.iter().enumerate() {
        let x0 = 70.0 + gi as f64 * group_w;
        for (bi, (name, v)) in bars.iter().enumerate() {
            if !legend.contains(name) {
                legend.push(name.clone());
            }
            let ci = legend.iter().position(|n| n == name).unwrap_or(0) % colors.len();
            let h = 220.0 * v / max;
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{name}: {v:.2} {unit}</title></rect>",
                x0 + bi as f64 * bar_w,
                260.0 - h,
                bar_w - 2.0,
                colors[ci]
            );
        }
        let _ = writeln!(s, "<text x=\"{x0:.1}\" y=\"278\">{label}</text>");
    }
    for (i, name) in legend.iter().enumerate() {
        let y = 50.0 + i as f64 * 16.0;
        let x = width - 150.0;
        let _ = writeln!(
            s,
            "<rect x=\"{x:.0}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{y:.0}\">{name}</text>",
            y - 9.0,
            colors[i % colors.len()],
            x + 14.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn markdown(rows: &[Row], env: &str, cmd: &str, configs: &[&str]) -> (String, String, String) {
    let sum = summarize(rows);
    let mut keys: Vec<(String, u32)> = sum.keys().map(|(w, f, _)| (w.clone(), *f)).collect();
    keys.dedup();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| workload | footprint | {} | nbd-swap / limit | best swap / limit |",
        configs.join(" | ")
    );
    let _ = writeln!(md, "|---|---|{}---|---|", "---|".repeat(configs.len()));
    let mut time_groups = Vec::new();
    let mut speed_groups = Vec::new();
    for (w, f) in &keys {
        let mut cells = Vec::new();
        let mut bars = Vec::new();
        let get = |c: &str| sum.get(&(w.clone(), *f, c.to_string()));
        for c in configs {
            match get(c) {
                Some((med, min, max, ok, swap, net)) => {
                    let mut cell = format!("{med:.1} s ({min:.1}–{max:.1})");
                    if *swap > 0 {
                        let _ = write!(cell, ", {swap} pages swapped");
                    }
                    if *c == "nbd-swap" {
                        let _ = write!(cell, ", {net:.0} MiB on wire");
                    }
                    if !ok {
                        cell.push_str(" **FAILED checksum/exit**");
                    }
                    cells.push(cell);
                    bars.push((c.to_string(), *med));
                }
                None => cells.push("–".into()),
            }
        }
        let limit = get("limit").map(|x| x.0);
        let ratio = |c: &str| match (get(c), limit) {
            (Some(x), Some(l)) if l > 0.0 => format!("{:.1}x", x.0 / l),
            _ => "–".into(),
        };
        let best = ["local-swap", "zram", "nbd-swap"]
            .iter()
            .filter_map(|c| get(c).map(|x| (c, x.0)))
            .min_by(|a, b| a.1.partial_cmp(&b.1).unwrap());
        let best_txt = match (best, limit) {
            (Some((c, t)), Some(l)) if l > 0.0 => format!("{:.1}x ({c})", t / l),
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {w} | {f} MiB | {} | {} | {best_txt} |",
            cells.join(" | "),
            ratio("nbd-swap")
        );
        time_groups.push((format!("{w} {f}M"), bars.clone()));
        if let (Some(n), Some(_)) = (get("nbd-swap"), limit) {
            let speed: Vec<(String, f64)> = bars
                .iter()
                .map(|(c, t)| (c.clone(), if *t > 0.0 { n.0 / t } else { 0.0 }))
                .collect();
            speed_groups.push((format!("{w} {f}M"), speed));
        }
    }
    let doc = format!(
        "# Benchmarks\n\nMeasured by `{cmd}`; every figure below was run, none is estimated. \
         Regenerate with the same command (it rewrites this file, `docs/bench/*.svg` and \
         `out/bench/results.csv`).\n\n## Configuration\n\n{env}\n\n## Wall time per run \
         (median, min–max over repetitions)\n\nA run is one workload process in the VM, from \
         start to exit (building its input included). Each row's checksum is compared with the \
         `limit` run of the same input; a mismatch or a crash is marked FAILED.\n\n{md}\n\
         ![time per workload](bench/time.svg)\n\n![speedup over network swap](bench/speedup.svg)\n\n\
         ## ElasticOS\n\n`elasticos` is pull/push only: jump (issue 4) is not built, so the \
         ElasticOS-with-jump column is absent, not estimated. Swap traffic does not apply to it; \
         its page moves are in the kernel log of each run (out/logs/bench-eos-home-node6.log).\n"
    );
    (
        doc,
        svg_bars("Wall time per run (median)", &time_groups, "s"),
        svg_bars(
            "Speedup over network swap (nbd-swap time / config time)",
            &speed_groups,
            "x",
        ),
    )
}

/// Runs the benchmark. `quick`: one small footprint (32 MiB, it fits in memory), one
/// repetition, no docs: the test suite runs this so the harness cannot rot.
pub fn bench(quick: bool, reps: u32, mem: u32, write_docs: bool) -> Result<()> {
    let t = kernel::build()?;
    let img = image::build()?;
    let cluster = Cluster::new(t.bzimage(), img, out_dir().join("logs"), mem)?;
    let footprints: Vec<u32> = if quick {
        // Harness check only: small enough to fit, so every configuration runs in seconds.
        vec![32]
    } else {
        vec![mem * 3 / 2, mem * 3]
    };
    let reps = if quick { 1 } else { reps };
    let max_fp = *footprints.iter().max().unwrap();
    let start = Instant::now();
    let mut configs = boot_configs(&cluster, mem, max_fp)?;
    let total = reps as usize * image::WORKLOADS.len() * footprints.len() * configs.len();
    let mut rows = Vec::new();
    for rep in 1..=reps {
        for w in image::WORKLOADS {
            for fp in &footprints {
                // Interleave the configurations for each input so drift hits all of them.
                for c in configs.iter_mut() {
                    let row = run_one(c, w, *fp, rep)
                        .with_context(|| format!("{w} {fp} MiB on {}", c.name))?;
                    eprintln!(
                        "bench [{}/{total}] rep {rep}/{reps} {w} {fp} MiB {:<10} {:>8.1} s {} (elapsed {:.0} min)",
                        rows.len() + 1,
                        c.name,
                        row.wall_s,
                        if row.ok { "ok" } else { "FAILED" },
                        start.elapsed().as_secs_f64() / 60.0
                    );
                    rows.push(row);
                }
            }
        }
    }
    let mut trouble = Vec::new();
    for c in configs {
        trouble.extend(c.vm.poweroff());
        if let Some(s) = c._server {
            trouble.extend(s.poweroff());
        }
    }
    verify(&mut rows);
    let dir = out_dir().join("bench");
    std::fs::write(dir.join("results.csv"), csv(&rows))?;
    let names = ["limit", "local-swap", "zram", "nbd-swap", "elasticos"];
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name\t: ").map(str::to_string))
        })
        .unwrap_or_default();
    let env = format!(
        "- host: {cpu}, {} cores; VMs under {:?}, 1 vCPU each\n- kernel: Linux {} with ElasticOS \
         (this tree), guest image: busybox initramfs\n- VM memory: {mem} MiB for the swap \
         configurations; `limit` VM {} MiB; swap devices {} MiB\n- network: QEMU socket \
         multicast hub between VMs, virtio-net\n- footprints: {:?} MiB; repetitions: {reps}; \
         total bench time {:.0} min",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cluster.accel(),
        t.version,
        max_fp + 256,
        2 * max_fp + 64,
        footprints,
        start.elapsed().as_secs_f64() / 60.0
    );
    let cmd = if quick {
        "cargo xtask bench --quick".to_string()
    } else {
        format!("cargo xtask bench --reps {reps} --mem {mem} --write-docs")
    };
    let (doc, time_svg, speed_svg) = markdown(&rows, &env, &cmd, &names);
    std::fs::write(dir.join("BENCHMARKS.md"), &doc)?;
    if write_docs {
        let docs = project_root().join("docs");
        std::fs::create_dir_all(docs.join("bench"))?;
        std::fs::write(docs.join("BENCHMARKS.md"), &doc)?;
        std::fs::write(docs.join("bench/time.svg"), time_svg)?;
        std::fs::write(docs.join("bench/speedup.svg"), speed_svg)?;
    }
    println!("{doc}");
    let failed = rows.iter().filter(|r| !r.ok).count();
    if !trouble.is_empty() {
        bail!("kernel trouble during the bench: {trouble:?}");
    }
    if failed > 0 {
        bail!(
            "{failed} of {} runs failed their checksum or crashed (out/bench/results.csv)",
            rows.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;

    fn row(w: &str, c: &str, t: f64, sum: &str) -> Row {
        Row {
            rep: 1,
            workload: w.into(),
            footprint_mib: 10,
            config: c.into(),
            wall_s: t,
            checksum: sum.into(),
            ok: true,
            swap_in_pages: 0,
            swap_out_pages: 0,
            net_bytes: 0,
            peak_rss_kib: 0,
        }
    }

    #[test]
    fn checksum_mismatch_fails_the_row() {
        let mut rows = vec![
            row("dfs", "limit", 1.0, "aa"),
            row("dfs", "zram", 2.0, "aa"),
            row("dfs", "nbd-swap", 3.0, "bb"),
        ];
        verify(&mut rows);
        assert!(rows[0].ok && rows[1].ok && !rows[2].ok);
    }

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let rows = vec![
            row("dfs", "limit", 1.0, "a"),
            row("dfs", "nbd-swap", 10.0, "a"),
        ];
        let (md, _, svg) = markdown(&rows, "env", "cmd", &["limit", "nbd-swap"]);
        assert!(md.contains(
            "| dfs | 10 MiB | 1.0 s (1.0–1.0) | 10.0 s (10.0–10.0), 0 MiB on wire | 10.0x |"
        ));
        assert!(svg.contains("<svg"));
    }
}
