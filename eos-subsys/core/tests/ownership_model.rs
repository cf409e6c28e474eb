//! Exhaustive model of one page's ownership between a home (H) and a member (M), with the
//! rules of `eos_core::ownership` at every decision, as pull.rs, push.rs and jump.rs apply
//! them. Every interleaving of the process's reads and writes, a second reader/writer at
//! home (/proc/PID/mem, ptrace), pulls, fetches, pushes, jumps both ways, timeouts (also
//! while the answer is still on its way), lost, duplicated and late frames and connection
//! resets is explored, within small budgets. Checked in every state reached:
//! - every read sees the last value written (a page never comes back stale or as zeros);
//! - the page is never mapped on both nodes at once while the process can write either;
//! - a state from which the process can make no step again (a hang) is never reached,
//!   unless it was stopped with a signal, which is an allowed outcome of lost transfers.

use eos_core::ownership::{
    arrived, give, push_gave_up, push_is_new, retry, Arrived, Give, Here, PushGaveUp, Slot,
};
use std::collections::{HashSet, VecDeque};

/// A page's content: the number of writes that made it.
type Ver = u8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum HomePte {
    Mapped(Ver),
    /// Owned by M.
    Marker,
    /// Being pushed to M; the pusher's buffer holds this.
    InFlight(Ver),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Msg {
    Pull(u8),
    /// Answer to a pull or a fetch: `None` is "build it".
    Pages(u8, Option<Ver>),
    /// A fetch could not be served now (EAGAIN).
    Busy(u8),
    Took,
    /// A push batch: its request id, the batch's own number (the same in every try), the page.
    Push(u8, u8, Ver),
    PushAck(u8),
    Fetch(u8),
    /// Execution, with the page if it was under the stack pointer, and the jump's number.
    Jump(u8, Option<Ver>),
    JumpAck(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum At {
    Home,
    Member,
    /// A jump is on its way to that node.
    ToMember,
    ToHome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Call {
    req: u8,
    tries: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    h: HomePte,
    /// A copy lent out, and the jump that carries it (0: a pull's or a fetch's answer).
    h_lent: Option<(Ver, u8)>,
    m: Option<Ver>,
    m_lent: Option<(Ver, u8)>,
    /// The newest push batch the member has taken: older or repeated ones are not installed.
    m_batch: u8,
    at: At,
    /// A fault at home waiting for a pull (one at a time: faults on one page are serialised).
    pull: Option<Call>,
    fetch: Option<Call>,
    push: Option<Call>,
    /// Jumps made so far; a jump carries its number, and only the next one is taken.
    jumps: u8,
    /// The sender of a jump waits for its acknowledgement.
    jump: Option<Call>,
    h2m: VecDeque<Msg>,
    m2h: VecDeque<Msg>,
    latest: Ver,
    next_req: u8,
    /// The push batch under way.
    batch: u8,
    killed: bool,
    // Budgets.
    writes: u8,
    sends: u8,
    drops: u8,
    dups: u8,
    resets: u8,
}

const CHANNEL: usize = 3;

impl State {
    fn new(writes: u8, sends: u8, drops: u8, dups: u8, resets: u8) -> Self {
        Self {
            h: HomePte::Mapped(0),
            h_lent: None,
            m: None,
            m_lent: None,
            m_batch: 0,
            at: At::Home,
            pull: None,
            fetch: None,
            push: None,
            jumps: 0,
            jump: None,
            h2m: VecDeque::new(),
            m2h: VecDeque::new(),
            latest: 0,
            next_req: 0,
            batch: 0,
            killed: false,
            writes,
            sends,
            drops,
            dups,
            resets,
        }
    }

    fn req(&mut self) -> u8 {
        self.next_req += 1;
        self.next_req
    }

    /// Sends a request or a first message of an exchange (counted against the budget).
    fn can_send(&self) -> bool {
        self.sends > 0 && self.h2m.len() < CHANNEL && self.m2h.len() < CHANNEL
    }
}

/// What went wrong, with the trace that led there.
#[derive(Debug)]
struct Violation(String);

fn here_home(h: HomePte) -> Here {
    match h {
        HomePte::Mapped(_) => Here::Mapped,
        HomePte::Marker => Here::Marker { to_requester: true },
        HomePte::InFlight(_) => Here::Marker {
            to_requester: false,
        },
    }
}

fn here_member(m: Option<Ver>) -> Here {
    if m.is_some() {
        Here::Mapped
    } else {
        Here::Empty
    }
}

/// Every state reachable from `s` in one step, with its label; reads are checked here.
fn steps(s: &State) -> Result<Vec<(&'static str, State)>, Violation> {
    let mut out = Vec::new();
    if s.killed {
        return Ok(out);
    }
    let proc_home = s.at == At::Home;
    let proc_member = s.at == At::Member;

    // Reads and writes where a page is mapped: the process where it runs, and a /proc/PID/mem
    // user at home whenever the page is mapped there.
    if let HomePte::Mapped(v) = s.h {
        if v != s.latest {
            return Err(Violation(format!(
                "home reads {v}, last written {}",
                s.latest
            )));
        }
        if s.writes > 0 {
            let mut n = s.clone();
            n.writes -= 1;
            n.latest += 1;
            n.h = HomePte::Mapped(n.latest);
            out.push(("write at home", n));
        }
    }
    if proc_member {
        if let Some(v) = s.m {
            if v != s.latest {
                return Err(Violation(format!(
                    "member reads {v}, last written {}",
                    s.latest
                )));
            }
            if s.writes > 0 {
                let mut n = s.clone();
                n.writes -= 1;
                n.latest += 1;
                n.m = Some(n.latest);
                out.push(("write on the member", n));
            }
        }
    }
    if matches!(s.h, HomePte::Mapped(_)) && s.m.is_some() && (proc_member || s.at == At::ToMember) {
        return Err(Violation(
            "mapped on both nodes while it runs on the member".into(),
        ));
    }

    // A fault at home on the marker (the process, or a GUP user while it is away) pulls,
    // unless the page is lent out from here and not confirmed yet: then it waits for the
    // confirmation, and is stopped if none comes.
    if s.h == HomePte::Marker && s.h_lent.is_some() {
        let mut n = s.clone();
        n.killed = true;
        out.push(("fault at home waits for a lent page: killed", n));
    }
    if s.h == HomePte::Marker && s.h_lent.is_none() && s.pull.is_none() && s.can_send() {
        let mut n = s.clone();
        n.sends -= 1;
        let req = n.req();
        n.pull = Some(Call { req, tries: 1 });
        n.h2m.push_back(Msg::Pull(req));
        out.push(("fault at home: pull", n));
    }
    // The process faults on the member on an empty PTE: fetch.
    if proc_member && s.m.is_none() && s.fetch.is_none() && s.can_send() {
        let mut n = s.clone();
        n.sends -= 1;
        let req = n.req();
        n.fetch = Some(Call { req, tries: 1 });
        n.m2h.push_back(Msg::Fetch(req));
        out.push(("fault on the member: fetch", n));
    }
    // The pusher, whenever the page is mapped at home (it waits for no jump).
    if let HomePte::Mapped(v) = s.h {
        if s.push.is_none() && s.can_send() {
            let mut n = s.clone();
            n.sends -= 1;
            let req = n.req();
            n.h = HomePte::InFlight(v);
            n.push = Some(Call { req, tries: 1 });
            n.batch = req;
            n.h2m.push_back(Msg::Push(req, req, v));
            out.push(("push", n));
        }
    }
    // Jumps carry the page under the stack pointer (this one, if it is mapped there). A jump
    // from home waits for the push batch under way.
    if proc_home && s.push.is_none() && s.jump.is_none() && s.can_send() {
        let mut n = s.clone();
        n.sends -= 1;
        let page = match n.h {
            HomePte::Mapped(v) => {
                n.h = HomePte::Marker;
                // Lent to the jump until the member acknowledges it.
                n.h_lent = Some((v, n.jumps + 1));
                Some(v)
            }
            _ => None,
        };
        n.at = At::ToMember;
        n.jumps += 1;
        n.jump = Some(Call {
            req: n.jumps,
            tries: 1,
        });
        n.h2m.push_back(Msg::Jump(n.jumps, page));
        out.push(("jump to the member", n));
    }
    if proc_member && s.fetch.is_none() && s.jump.is_none() && s.can_send() {
        let mut n = s.clone();
        n.sends -= 1;
        let page = n.m.take();
        if let Some(v) = page {
            // Lent to the jump until the home acknowledges it.
            n.m_lent = Some((v, n.jumps + 1));
        }
        n.at = At::ToHome;
        n.jumps += 1;
        n.jump = Some(Call {
            req: n.jumps,
            tries: 1,
        });
        n.m2h.push_back(Msg::Jump(n.jumps, page));
        out.push(("jump home", n));
    }

    // Timeouts: allowed at any time a call waits, even with its answer on the way.
    for which in 0..3 {
        let call = [s.pull, s.fetch, s.push][which];
        let Some(c) = call else { continue };
        let mut n = s.clone();
        if retry(c.tries) {
            if !n.can_send() {
                continue;
            }
            n.sends -= 1;
            let req = n.req();
            let c2 = Some(Call {
                req,
                tries: c.tries + 1,
            });
            match which {
                0 => {
                    n.pull = c2;
                    n.h2m.push_back(Msg::Pull(req));
                }
                1 => {
                    n.fetch = c2;
                    n.m2h.push_back(Msg::Fetch(req));
                }
                _ => {
                    let HomePte::InFlight(v) = n.h else {
                        unreachable!()
                    };
                    n.push = c2;
                    n.h2m.push_back(Msg::Push(req, n.batch, v));
                }
            }
            out.push(("timeout: ask again", n));
        } else {
            match which {
                // The fault gives up: the process is killed (the owner still has the data).
                0 | 1 => n.killed = true,
                // The member may have the batch, and the process may have written it there:
                // the process is stopped.
                _ => match push_gave_up() {
                    PushGaveUp::Kill => n.killed = true,
                },
            }
            out.push(("timeout: give up", n));
        }
    }

    // A jump not confirmed: the process may run on either side; it is stopped.
    if s.jump.is_some() {
        let mut n = s.clone();
        n.killed = true;
        out.push(("jump not confirmed: killed", n));
    }

    // A connection reset: frames on the wire are lost; calls fail and are retried by the
    // timeout steps above (a reset fails them at once, which is the same).
    if s.resets > 0 && (!s.h2m.is_empty() || !s.m2h.is_empty()) {
        let mut n = s.clone();
        n.resets -= 1;
        n.h2m.clear();
        n.m2h.clear();
        out.push(("connection reset", n));
    }

    // Deliveries, drops and duplicates of the frame at the head of each direction.
    for to_member in [true, false] {
        let q = if to_member { &s.h2m } else { &s.m2h };
        let Some(&m) = q.front() else { continue };
        if s.drops > 0 {
            let mut n = s.clone();
            n.drops -= 1;
            if to_member {
                n.h2m.pop_front()
            } else {
                n.m2h.pop_front()
            };
            out.push(("frame lost", n));
        }
        // The injector duplicates page frames only: a jump relies on the connection's
        // at-most-once delivery (the receiver's "not running here" check and the start of
        // the run are not one step), which the record layer's sequence numbers (issue 13)
        // make a property of the wire too.
        let jump_frame = matches!(m, Msg::Jump(..) | Msg::JumpAck(_));
        if s.dups > 0 && q.len() < CHANNEL && !jump_frame {
            let mut n = s.clone();
            n.dups -= 1;
            if to_member {
                n.h2m.push_front(m)
            } else {
                n.m2h.push_front(m)
            };
            out.push(("frame duplicated", n));
        }
        let mut n = s.clone();
        if to_member {
            n.h2m.pop_front()
        } else {
            n.m2h.pop_front()
        };
        if to_member {
            member_receives(&mut n, m);
        } else {
            home_receives(&mut n, m);
        }
        if n.h2m.len() <= CHANNEL && n.m2h.len() <= CHANNEL {
            out.push(("delivered", n));
        }
    }
    Ok(out)
}

fn member_receives(n: &mut State, m: Msg) {
    match m {
        Msg::Pull(req) => {
            let answer = match give(here_member(n.m), n.m_lent.is_some()) {
                Give::Lend => {
                    let v = n.m.take();
                    n.m_lent = v.map(|v| (v, 0));
                    v
                }
                Give::Again => n.m_lent.map(|l| l.0),
                Give::Build | Give::Elsewhere => None,
            };
            n.m2h.push_back(Msg::Pages(req, answer));
        }
        Msg::Took => n.m_lent = None,
        Msg::JumpAck(j) => {
            if n.jump.map(|c| c.req) == Some(j) {
                n.jump = None;
                if n.m_lent.is_some_and(|l| l.1 == j) {
                    n.m_lent = None;
                }
            }
        }
        Msg::Push(req, batch, v) => {
            if push_is_new(n.m_batch as u64, batch as u64) {
                n.m_batch = batch;
                if arrived(if n.m.is_some() {
                    Slot::Mapped
                } else {
                    Slot::Waiting
                }) == Arrived::Install
                {
                    n.m = Some(v);
                }
                n.m_lent = None;
            }
            n.m2h.push_back(Msg::PushAck(req));
        }
        Msg::Pages(req, v) => {
            if n.fetch.map(|c| c.req) != Some(req) {
                return; // late or duplicate: no waiter
            }
            n.fetch = None;
            let slot = if n.m.is_some() {
                Slot::Mapped
            } else {
                Slot::Waiting
            };
            match (v, arrived(slot)) {
                (Some(v), Arrived::Install) => n.m = Some(v),
                (None, Arrived::Install) => n.m = Some(0),
                _ => {}
            }
            if v.is_some() {
                n.m2h.push_back(Msg::Took);
            }
        }
        Msg::Busy(req) => {
            if n.fetch.map(|c| c.req) == Some(req) {
                n.fetch = None;
            }
        }
        Msg::Jump(j, page) => {
            if n.at != At::ToMember {
                return; // a duplicate: the process is not on its way here, refused
            }
            if let Some(v) = page {
                if arrived(if n.m.is_some() {
                    Slot::Mapped
                } else {
                    Slot::Waiting
                }) == Arrived::Install
                {
                    n.m = Some(v);
                }
            }
            n.at = At::Member;
            n.m2h.push_back(Msg::JumpAck(j));
        }
        Msg::PushAck(_) | Msg::Fetch(_) => unreachable!("home-bound"),
    }
}

fn home_receives(n: &mut State, m: Msg) {
    match m {
        Msg::Pages(req, v) => {
            if n.pull.map(|c| c.req) != Some(req) {
                return;
            }
            n.pull = None;
            let slot = if n.h == HomePte::Marker {
                Slot::Waiting
            } else {
                Slot::Mapped
            };
            if arrived(slot) == Arrived::Install {
                n.h = HomePte::Mapped(v.unwrap_or(0));
            }
            if v.is_some() {
                n.h2m.push_back(Msg::Took);
            }
        }
        Msg::Fetch(req) => match give(here_home(n.h), n.h_lent.is_some()) {
            Give::Lend => {
                let HomePte::Mapped(v) = n.h else {
                    unreachable!()
                };
                n.h = HomePte::Marker;
                n.h_lent = Some((v, 0));
                n.h2m.push_back(Msg::Pages(req, Some(v)));
            }
            Give::Again => n.h2m.push_back(Msg::Pages(req, n.h_lent.map(|l| l.0))),
            Give::Build | Give::Elsewhere => n.h2m.push_back(Msg::Busy(req)),
        },
        Msg::Took => n.h_lent = None,
        Msg::PushAck(req) => {
            if n.push.map(|c| c.req) == Some(req) {
                n.push = None;
                if let HomePte::InFlight(_) = n.h {
                    n.h = HomePte::Marker;
                }
            }
        }
        Msg::Jump(j, page) => {
            if n.at != At::ToHome {
                return;
            }
            if let Some(v) = page {
                if matches!(n.h, HomePte::Marker | HomePte::InFlight(_)) {
                    n.h = HomePte::Mapped(v);
                    // A pull or push of this page still waiting is superseded: its answer
                    // is dropped.
                    n.pull = None;
                    n.push = None;
                }
            }
            n.at = At::Home;
            n.h2m.push_back(Msg::JumpAck(j));
        }
        Msg::JumpAck(j) => {
            if n.jump.map(|c| c.req) == Some(j) {
                n.jump = None;
                if n.h_lent.is_some_and(|l| l.1 == j) {
                    n.h_lent = None;
                }
            }
        }
        Msg::Pull(_) | Msg::Push(..) | Msg::Busy(_) => unreachable!("member-bound"),
    }
}

/// Explores every state reachable within the budgets; returns how many there are.
fn explore(start: State) -> usize {
    let mut seen: HashSet<State> = HashSet::new();
    // Breadth first: a violation is reported with a shortest trace.
    let mut todo = VecDeque::from([(start.clone(), Vec::<String>::new())]);
    seen.insert(start);
    while let Some((s, trace)) = todo.pop_front() {
        let next = match steps(&s) {
            Ok(n) => n,
            Err(v) => panic!("{}\nafter:\n{}\nstate: {s:?}", v.0, trace.join("\n")),
        };
        let stuck =
            next.is_empty() && !s.killed && s.sends > 0 && s.h2m.is_empty() && s.m2h.is_empty();
        assert!(
            !stuck,
            "no step possible (a hang)\nafter:\n{}\nstate: {s:?}",
            trace.join("\n")
        );
        for (label, n) in next {
            if seen.insert(n.clone()) {
                let mut t = trace.clone();
                t.push(format!("{label:<28} -> h {:?} lent {:?} | m {:?} lent {:?} | at {:?} | h2m {:?} m2h {:?}",
                    n.h, n.h_lent, n.m, n.m_lent, n.at, n.h2m, n.m2h));
                todo.push_back((n, t));
            }
        }
    }
    seen.len()
}

#[test]
fn every_interleaving_on_a_reliable_link_reads_back_what_was_written() {
    let n = explore(State::new(2, 7, 0, 0, 0));
    println!("{n} states");
    assert!(n > 1000);
}

#[test]
fn lost_frames_and_timeouts_never_lose_the_page() {
    let n = explore(State::new(2, 6, 1, 0, 0));
    println!("{n} states");
}

#[test]
fn duplicated_frames_never_bring_back_an_old_page() {
    let n = explore(State::new(2, 6, 0, 1, 0));
    println!("{n} states");
}

#[test]
fn connection_resets_never_lose_the_page() {
    let n = explore(State::new(1, 6, 0, 0, 1));
    println!("{n} states");
}

#[test]
fn all_faults_together() {
    let n = explore(State::new(1, 5, 1, 1, 1));
    println!("{n} states");
}
