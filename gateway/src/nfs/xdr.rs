//! A bounded XDR reader over one received RPC record.
//!
//! Every variable-length field is checked against both its protocol limit and
//! the bytes actually left in the record before anything is allocated, so a
//! length field that claims 4 GiB costs nothing: the call is answered
//! GARBAGE_ARGS. Fixed-size types are decoded with `nfs3_types`' own codec.

use std::io::Cursor;

use nfs3_types::nfs3::{filename3, nfs_fh3, nfspath3, NFS3_FHSIZE};
use nfs3_types::xdr_codec::{Opaque, Unpack};

/// The record did not hold what the procedure's arguments need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed XDR at byte {at}: {what}")]
pub struct Garbage {
    pub at: usize,
    pub what: &'static str,
}

/// Longest name NFS clients may send; longer than 255 is answered
/// NAMETOOLONG by the core rather than rejected as garbage.
const MAX_WIRE_NAME: usize = 1024;
/// Longest symlink target or mount path accepted on the wire.
const MAX_WIRE_PATH: usize = 4096;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn fail(&self, what: &'static str) -> Garbage {
        Garbage { at: self.pos, what }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Garbage> {
        if self.buf.len() - self.pos < n {
            return Err(self.fail(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u32(&mut self) -> Result<u32, Garbage> {
        let b = self.take(4, "truncated u32")?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, Garbage> {
        let b = self.take(8, "truncated u64")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn bool(&mut self) -> Result<bool, Garbage> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.fail("boolean neither 0 nor 1")),
        }
    }

    /// A variable-length opaque of at most `max` bytes, borrowed from the record.
    pub fn opaque(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], Garbage> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(self.fail(what));
        }
        let padded = len.checked_add(3).ok_or(self.fail(what))? & !3;
        let s = self.take(padded, what)?;
        Ok(&s[..len])
    }

    /// A fixed-size type without variable-length parts, via `nfs3_types`.
    pub fn fixed<T: Unpack>(&mut self, what: &'static str) -> Result<T, Garbage> {
        let mut cur = Cursor::new(self.rest());
        let (v, n) = T::unpack(&mut cur).map_err(|_| self.fail(what))?;
        self.pos += n;
        Ok(v)
    }

    pub fn fh(&mut self) -> Result<nfs_fh3, Garbage> {
        let data = self.opaque(NFS3_FHSIZE, "file handle longer than 64 bytes")?;
        Ok(nfs_fh3 {
            data: Opaque::owned(data.to_vec()),
        })
    }

    pub fn name(&mut self) -> Result<filename3<'a>, Garbage> {
        Ok(filename3(Opaque::borrowed(
            self.opaque(MAX_WIRE_NAME, "name too long")?,
        )))
    }

    pub fn path(&mut self) -> Result<nfspath3<'a>, Garbage> {
        Ok(nfspath3(Opaque::borrowed(
            self.opaque(MAX_WIRE_PATH, "path too long")?,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_opaque_length_is_garbage_not_an_allocation() {
        let mut rec = vec![0xff, 0xff, 0xff, 0xfc];
        rec.extend_from_slice(&[0u8; 16]);
        let mut r = Reader::new(&rec);
        assert!(r.opaque(usize::MAX, "x").is_err());
        let mut r = Reader::new(&rec);
        assert!(r.fh().is_err());
    }

    #[test]
    fn opaque_is_padded_to_four() {
        let rec = [
            0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o', 0, 0, 0, 0, 0, 0, 7,
        ];
        let mut r = Reader::new(&rec);
        assert_eq!(r.opaque(10, "x").unwrap(), b"hello");
        assert_eq!(r.u32().unwrap(), 7);
        assert!(r.u32().is_err());
    }
}
