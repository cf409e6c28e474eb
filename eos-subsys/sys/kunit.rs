// SPDX-License-Identifier: GPL-2.0

//! Registering a KUnit suite from Rust (the 6.12 kernel crate has no `#[kunit_tests]`).
//!
//! A suite is a static array of `kunit_case` and a static `kunit_suite` whose address sits in
//! the `.kunit_test_suites` section, exactly what C's `kunit_test_suite()` emits; the KUnit
//! executor runs it at boot with the other built-in suites and prints KTAP on the console.

use kernel::bindings;

/// Result of one test: `Err` carries the failure message.
pub(crate) type Outcome = Result<(), &'static str>;

/// A suite entry for `.kunit_test_suites`.
#[repr(transparent)]
pub(crate) struct SuiteEntry(pub(crate) *mut bindings::kunit_suite);

// SAFETY: the entry is only read by the KUnit executor, single-threaded, at boot.
unsafe impl Sync for SuiteEntry {}

/// A test case running `run`, named `name`.
pub(crate) const fn case(
    name: &'static core::ffi::CStr,
    run: unsafe extern "C" fn(*mut bindings::kunit),
) -> bindings::kunit_case {
    // SAFETY: all-zero is a valid `kunit_case` (KUnit fills the private fields).
    let mut c: bindings::kunit_case = unsafe { core::mem::zeroed() };
    c.run_case = Some(run);
    c.name = name.as_ptr().cast();
    c
}

/// The all-zero case that ends a case array.
pub(crate) const fn end() -> bindings::kunit_case {
    // SAFETY: all-zero is a valid `kunit_case` and is KUnit's terminator.
    unsafe { core::mem::zeroed() }
}

/// A suite named `name` over the zero-terminated `cases`.
pub(crate) const fn suite(name: &str, cases: *mut bindings::kunit_case) -> bindings::kunit_suite {
    // SAFETY: all-zero is a valid `kunit_suite`.
    let mut s: bindings::kunit_suite = unsafe { core::mem::zeroed() };
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() && i < s.name.len() - 1 {
        s.name[i] = b[i] as _;
        i += 1;
    }
    s.test_cases = cases;
    s
}

/// Records the outcome of a case in the running test.
///
/// # Safety
///
/// `test` must be the `struct kunit` KUnit passed to the running case.
pub(crate) unsafe fn report(test: *mut bindings::kunit, name: &str, r: Outcome) {
    if let Err(msg) = r {
        kernel::pr_err!("    # {}: FAILED: {}\n", name, msg);
        // SAFETY: the caller guarantees `test` is live; this is `kunit_set_failure()`.
        unsafe { (*test).status = bindings::kunit_status_KUNIT_FAILURE };
    }
}

/// Defines the cases, the suite and its section entry.
macro_rules! kunit_suite {
    ($suite:literal, [$($case:ident),* $(,)?]) => {
        mod __suite {
            use kernel::bindings;
            $(
                #[allow(non_snake_case)]
                unsafe extern "C" fn $case(test: *mut bindings::kunit) {
                    // SAFETY: KUnit calls a case with its live `struct kunit`.
                    unsafe { $crate::sys::kunit::report(test, stringify!($case), super::$case()) };
                }
            )*
            static mut CASES: [bindings::kunit_case; [$(stringify!($case)),*].len() + 1] = [
                $($crate::sys::kunit::case(
                    // SAFETY: the literal has no interior NUL and is NUL-terminated here.
                    unsafe {
                        core::ffi::CStr::from_bytes_with_nul_unchecked(
                            concat!(stringify!($case), "\0").as_bytes(),
                        )
                    },
                    $case,
                ),)*
                $crate::sys::kunit::end(),
            ];
            // `unsafe` is needed on older compilers, where taking a static mut's address was.
            #[allow(unused_unsafe)]
            static mut SUITE: bindings::kunit_suite =
                // SAFETY: only the address of `CASES` is taken; KUnit is its only user.
                $crate::sys::kunit::suite($suite, unsafe { core::ptr::addr_of_mut!(CASES) }.cast());
            #[allow(unused_unsafe)]
            #[used]
            #[link_section = ".kunit_test_suites"]
            static ENTRY: $crate::sys::kunit::SuiteEntry =
                // SAFETY: only the address of `SUITE` is taken; KUnit is its only user.
                $crate::sys::kunit::SuiteEntry(unsafe { core::ptr::addr_of_mut!(SUITE) });
        }
    };
}
pub(crate) use kunit_suite;
