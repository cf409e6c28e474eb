//! The stretch family: a shell of a process is created (Stretch, StretchOk) and dropped
//! (Release). Each message's layout, decoder and encoder sit together.

use super::cursor::{Reader, Writer};
use super::{bad_len, check_status, Header, Message, ProtoError, Tails};

/// Most bytes of path, argv and environment in a `Stretch`.
pub const MAX_STRETCH_STRINGS: usize = 16 * 1024;
/// Fixed part of a `Stretch` payload.
pub const STRETCH_FIXED: usize = 56;
/// Payload size of `StretchOk`.
pub(super) const STRETCH_OK_LEN: usize = 16;
/// Payload size of `Release`.
pub(super) const RELEASE_LEN: usize = 8;

/// `Stretch`: create a shell of process `pid` (home's pid) running the same executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch<'a> {
    /// Request id, echoed in `StretchOk`.
    pub req: u32,
    /// The process at home.
    pub pid: u32,
    /// SHA-256 of the executable: the shell's node refuses a different file.
    pub exe_hash: [u8; 32],
    /// Effective user and group id of the process (initial namespace): the shell runs as them.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// Absolute path of the executable.
    pub path: &'a [u8],
    /// Arguments, each NUL-terminated (so the shell's initial stack matches).
    pub argv: &'a [u8],
    /// Environment, each entry NUL-terminated.
    pub env: &'a [u8],
}

// Stretch: req u32, pid u32, exe_hash [32], path_len u16, argv_len u16, env_len u16,
// reserved u16, uid u32, gid u32; then path, argv, env.
pub(super) fn decode_stretch<'a>(
    h: &Header,
    r: &mut Reader<'a>,
) -> Result<Message<'a>, ProtoError> {
    let (req, pid, exe_hash) = (r.u32()?, r.u32()?, r.array()?);
    let (pl, al, el) = (r.u16()?, r.u16()?, r.u16()?);
    let (pl, al, el) = (usize::from(pl), usize::from(al), usize::from(el));
    let (reserved, uid, gid) = (r.u16()?, r.u32()?, r.u32()?);
    if reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    if pl + al + el != r.remaining() {
        return Err(bad_len(h));
    }
    let (path, argv, env) = (r.bytes(pl)?, r.bytes(al)?, r.rest());
    if path.first() != Some(&b'/') || path.contains(&0) {
        return Err(ProtoError::BadField("path"));
    }
    for list in [argv, env] {
        if list.last().is_some_and(|&b| b != 0) {
            return Err(ProtoError::BadField("string list"));
        }
    }
    if uid == u32::MAX || gid == u32::MAX {
        return Err(ProtoError::BadField("uid/gid"));
    }
    Ok(Message::Stretch(Stretch {
        req,
        pid,
        exe_hash,
        uid,
        gid,
        path,
        argv,
        env,
    }))
}

pub(super) fn encode_stretch<'a>(
    w: &mut Writer<'_>,
    m: &Stretch<'a>,
) -> Result<Tails<'a>, ProtoError> {
    let lens = [m.path.len(), m.argv.len(), m.env.len()];
    if lens.iter().sum::<usize>() > MAX_STRETCH_STRINGS {
        return Err(ProtoError::BadField("stretch strings"));
    }
    w.u32(m.req)?;
    w.u32(m.pid)?;
    w.bytes(&m.exe_hash)?;
    for l in lens {
        w.u16(l as u16)?;
    }
    w.u16(0)?; // reserved
    w.u32(m.uid)?;
    w.u32(m.gid)?;
    Ok([m.path, m.argv, m.env, &[]])
}

// StretchOk: req u32, status i32, shell_pid u32, reserved u32.
pub(super) fn decode_stretch_ok(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (req, status, shell_pid, reserved) = (r.u32()?, r.i32()?, r.u32()?, r.u32()?);
    if reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    Ok(Message::StretchOk {
        req,
        status: check_status(status)?,
        shell_pid,
    })
}

pub(super) fn encode_stretch_ok(
    w: &mut Writer<'_>,
    req: u32,
    status: i32,
    shell_pid: u32,
) -> Result<(), ProtoError> {
    w.u32(req)?;
    w.i32(status)?;
    w.u32(shell_pid)?;
    w.u32(0) // reserved
}

// Release: pid u32, reserved u32.
pub(super) fn decode_release(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (pid, reserved) = (r.u32()?, r.u32()?);
    if reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    Ok(Message::Release { pid })
}

pub(super) fn encode_release(w: &mut Writer<'_>, pid: u32) -> Result<(), ProtoError> {
    w.u32(pid)?;
    w.u32(0) // reserved
}
