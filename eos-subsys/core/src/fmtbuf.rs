//! `core::fmt` into a fixed byte buffer, for sysfs `show` callbacks (one page, no allocation).

use core::fmt;

/// Writes formatted text into a slice; output beyond its end is cut and reported as an error.
#[derive(Debug)]
pub struct FmtBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> FmtBuf<'a> {
    /// An empty writer over `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.len
    }

    /// The text written so far.
    #[cfg(test)]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for FmtBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn writes_and_truncates() {
        let mut b = [0u8; 8];
        let mut w = FmtBuf::new(&mut b);
        write!(w, "{}-ab", 12).unwrap();
        assert_eq!(w.as_bytes(), b"12-ab");
        assert!(write!(w, "xyzw").is_err());
        assert_eq!(w.written(), 8);
        assert_eq!(w.as_bytes(), b"12-abxyz");
    }
}
