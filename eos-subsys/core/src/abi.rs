//! The user-space ABI's numbers, read on the host from their one source, for build tools
//! (eosctl's build script, xtask): the `ELASTIC_*` constants of
//! `eos-subsys/include/uapi/linux/elastic.h`, and the syscall numbers from the lines our
//! patch series adds to `arch/x86/entry/syscalls/syscall_64.tbl` (from which the kernel
//! build generates `__NR_elastic_*` in `<asm/unistd_64.h>`). Not part of the kernel crate.

/// `(name, value)` of every `#define NAME NUMBER` in a C header.
pub fn defines(header: &str) -> impl Iterator<Item = (&str, u64)> {
    header.lines().filter_map(|l| {
        let mut w = l.trim_start().strip_prefix("#define")?.split_whitespace();
        let name = w.next()?;
        let value = w.next()?.parse().ok()?;
        Some((name, value))
    })
}

/// `(name, number)` of every syscall a patch adds to a syscall table (`+463 common name
/// sys_name`).
pub fn added_syscalls(patch: &str) -> impl Iterator<Item = (&str, u32)> {
    patch.lines().filter_map(|l| {
        let mut w = l.strip_prefix('+')?.split_whitespace();
        let nr = w.next()?.parse().ok()?;
        let abi = w.next()?;
        let name = w.next()?;
        let entry = w.next()?;
        (matches!(abi, "common" | "64") && entry.strip_prefix("sys_") == Some(name))
            .then_some((name, nr))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = include_str!("../../include/uapi/linux/elastic.h");
    const PATCH: &str = include_str!(
        "../../../linux/patches/0003-mm-elasticos-page-ownership-markers-and-hooks.patch"
    );

    #[test]
    fn the_ctl_operations_are_defined_once() {
        let d: std::vec::Vec<_> = defines(HEADER).collect();
        assert_eq!(
            d,
            [
                ("ELASTIC_CTL_BUDGET", 1),
                ("ELASTIC_CTL_MARK", 2),
                ("ELASTIC_CTL_STICKY", 3)
            ]
        );
    }

    #[test]
    fn the_syscalls_come_from_the_patched_table() {
        let s: std::vec::Vec<_> = added_syscalls(PATCH).collect();
        assert_eq!(
            s,
            [
                ("elastic_stretch", 463),
                ("elastic_ctl", 464),
                ("elastic_jump", 465)
            ]
        );
    }

    #[test]
    fn other_lines_are_not_read_as_numbers() {
        assert_eq!(defines("#define X\n#define Y abc\n#ifndef Z\n").count(), 0);
        assert_eq!(
            added_syscalls("+462 common mseal sys_mseal\n 463 common a sys_a\n+1 x32 b sys_b\n")
                .count(),
            1
        );
    }
}
