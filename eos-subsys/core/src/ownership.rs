//! Ownership of a page between nodes: the rules both ends of a transfer follow so that no
//! node drops the only copy of a page before the receiver has installed it.
//!
//! A page leaves its owner as a *lent* copy: the owner's PTE no longer maps it (a marker
//! names the receiver at home; empty in a shell), but the owner keeps the data until the
//! receiver confirms with `Took`. A request that comes again for a page that already left
//! (its answer was lost, timed out or could not be installed) is answered from that copy.
//! On arrival the page is installed only over the marker or empty PTE that stood for it; a
//! page mapped there already is at least as new (it came from the same lent copy, by a
//! duplicate answer or with a jump, and may have been written since) and wins.
//!
//! `core/tests/ownership_model.rs` explores every interleaving of faults, writes, pulls,
//! fetches, pushes, jumps, timeouts, lost, duplicated and late frames and link resets for
//! one page on two nodes with these rules, and checks that every read returns the last
//! value written.

/// What the node asked for a page has of it when the request comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Here {
    /// A page is mapped.
    Mapped,
    /// Nothing is mapped (in a shell: the home owns it, or it was never written here).
    Empty,
    /// A marker: the page is owned by `to_requester` (the asking node) or by another node,
    /// or it is being pushed.
    Marker {
        /// The marker names the node that asks.
        to_requester: bool,
    },
}

/// How a request for a page is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Give {
    /// Hand over the mapped page, keeping a lent copy until the receiver confirms.
    Lend,
    /// The page left already towards the asker: send the lent copy again.
    Again,
    /// No data here and none lent: the asker builds the page (zeroes or file data).
    Build,
    /// Not here (in flight, or owned by a third node): the asker tries again later, or the
    /// home relays it.
    Elsewhere,
}

/// The answer to a request for a page, from what is here and whether a lent copy of it is
/// kept for the asker.
pub const fn give(here: Here, lent: bool) -> Give {
    match here {
        Here::Mapped => Give::Lend,
        Here::Empty if lent => Give::Again,
        Here::Empty => Give::Build,
        Here::Marker { to_requester: true } if lent => Give::Again,
        Here::Marker { .. } => Give::Elsewhere,
    }
}

/// What the receiver's PTE holds when a page arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The marker or empty PTE that stood for the page while it was away.
    Waiting,
    /// Something else: a page mapped already, or the range changed meanwhile.
    Mapped,
}

/// What the receiver does with a page that came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrived {
    /// Install it, then confirm (`Took`).
    Install,
    /// The mapped page is at least as new (or the page is no longer wanted there): keep
    /// what is there, and confirm, so the lent copy goes.
    Keep,
}

/// See [`Arrived`].
pub const fn arrived(slot: Slot) -> Arrived {
    match slot {
        Slot::Waiting => Arrived::Install,
        Slot::Mapped => Arrived::Keep,
    }
}

/// How often a transfer is asked for before the fault gives up (the process is then killed
/// with SIGBUS and the cause logged; the owner still has the data).
pub const TRANSFER_TRIES: u32 = 3;

/// Whether a transfer that got no answer (or whose page could not be installed) after `tries`
/// attempts is asked for again.
pub const fn retry(tries: u32) -> bool {
    tries < TRANSFER_TRIES
}

/// What the home does with a push batch that got no acknowledgement after all its tries
/// (a refusal, which the member sends only after taking back what it installed, restores
/// the pages here instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushGaveUp {
    /// The member may have installed the batch, and the process may have run there and
    /// written it since: neither copy can be trusted to be the newest. The process is
    /// stopped (SIGBUS, logged); restoring here and telling the member to drop its copy
    /// would depend on that message arriving, which is what just failed.
    Kill,
}

/// See [`PushGaveUp`].
pub const fn push_gave_up() -> PushGaveUp {
    PushGaveUp::Kill
}

/// Whether a push batch numbered `batch` is installed by a member that took `newest` last.
/// A batch is sent again with its number when its acknowledgement is late; by then the
/// member may have taken it, run the process on it and given the pages away: a repeat or an
/// older batch is acknowledged but never installed.
pub const fn push_is_new(newest: u64, batch: u64) -> bool {
    batch > newest
}

/// How a push batch ended at the member, as its `PushAck` status says: all its pages
/// installed (0), the first `k` of them (`k` > 0: a page could not be installed, and the
/// member keeps those before it, which the process may have written there already), or none
/// (an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushEnd {
    /// Every page is the member's.
    All,
    /// Pages `0..k` are the member's; the rest stay with the home.
    Prefix(u32),
    /// No page moved.
    None,
}

impl PushEnd {
    /// From a `PushAck` status.
    pub const fn from_status(status: i32) -> Self {
        match status {
            0 => Self::All,
            k if k > 0 => Self::Prefix(k as u32),
            _ => Self::None,
        }
    }

    /// Whether page `i` of the batch is now the member's.
    pub const fn taken(self, i: usize) -> bool {
        match self {
            Self::All => true,
            Self::Prefix(k) => i < k as usize,
            Self::None => false,
        }
    }

    /// The status a member answers after installing `installed` of `count` pages (a repeat
    /// of the batch gets the same); `None` if it installed none (it answers the error).
    pub const fn status(installed: usize, count: usize) -> Option<i32> {
        match installed {
            0 => None,
            k if k >= count => Some(0),
            k => Some(k as i32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partly_installed_push_settles_its_prefix_only() {
        assert_eq!(PushEnd::status(0, 8), None);
        let end = PushEnd::from_status(PushEnd::status(3, 8).unwrap());
        assert_eq!(end, PushEnd::Prefix(3));
        assert!((0..3).all(|i| end.taken(i)));
        assert!((3..8).all(|i| !end.taken(i)));
        assert_eq!(PushEnd::status(8, 8), Some(0));
        assert!(PushEnd::All.taken(31));
        assert_eq!(PushEnd::from_status(-12), PushEnd::None);
        assert!(!PushEnd::None.taken(0));
    }

    #[test]
    fn a_page_left_is_given_again_never_built() {
        assert_eq!(give(Here::Empty, true), Give::Again);
        assert_eq!(give(Here::Marker { to_requester: true }, true), Give::Again);
        assert_eq!(give(Here::Empty, false), Give::Build);
        assert_eq!(
            give(
                Here::Marker {
                    to_requester: false
                },
                true
            ),
            Give::Elsewhere
        );
        assert_eq!(give(Here::Mapped, true), Give::Lend);
    }

    #[test]
    fn a_mapped_page_wins_over_one_arriving() {
        assert_eq!(arrived(Slot::Mapped), Arrived::Keep);
        assert_eq!(arrived(Slot::Waiting), Arrived::Install);
    }

    #[test]
    fn tries_are_bounded() {
        assert!(retry(0) && retry(TRANSFER_TRIES - 1) && !retry(TRANSFER_TRIES));
    }
}
