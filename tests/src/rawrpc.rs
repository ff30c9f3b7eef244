//! Hand-built ONC RPC records (RFC 5531 record marking over TCP) for tests
//! that must send what no client library would: garbage, truncated records,
//! lying length fields, or a bare NULL call from a chosen source address.

use std::time::Duration;

use nfs3_types::rpc::{call_body, msg_body, opaque_auth, rpc_msg, RPC_VERSION_2};
use nfs3_types::xdr_codec::Pack;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The last-fragment bit of a record marker.
pub const LAST_FRAGMENT: u32 = 0x8000_0000;

/// A record marker: fragment length plus the last-fragment bit.
pub fn marker(len: u32, last: bool) -> [u8; 4] {
    assert!(len < LAST_FRAGMENT, "fragment length is 31 bits");
    (len | if last { LAST_FRAGMENT } else { 0 }).to_be_bytes()
}

/// `payload` as one complete record (a single last fragment).
pub fn record(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("record fits u32");
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&marker(len, true));
    out.extend_from_slice(payload);
    out
}

/// The XDR of an RPC CALL header (xid through verifier), AUTH_NULL verifier.
pub fn call_header(xid: u32, prog: u32, vers: u32, proc: u32, cred: &opaque_auth<'_>) -> Vec<u8> {
    let msg = rpc_msg {
        xid,
        body: msg_body::CALL(call_body {
            rpcvers: RPC_VERSION_2,
            prog,
            vers,
            proc,
            cred: cred.borrow_auth(),
            verf: opaque_auth::default(),
        }),
    };
    let mut out = Vec::with_capacity(msg.packed_size());
    msg.pack(&mut out).expect("pack rpc header");
    out
}

/// A complete record holding an NFSv3 NULL call.
pub fn nfs_null_call(xid: u32) -> Vec<u8> {
    record(&call_header(
        xid,
        nfs3_types::nfs3::PROGRAM,
        nfs3_types::nfs3::VERSION,
        0,
        &opaque_auth::default(),
    ))
}

/// A small XDR writer for building arguments by hand, lying length fields
/// included.
#[derive(Clone, Debug, Default)]
pub struct Xdr(pub Vec<u8>);

impl Xdr {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Variable-length opaque: length, bytes, zero padding to 4.
    pub fn opaque(self, bytes: &[u8]) -> Self {
        let len = u32::try_from(bytes.len()).expect("opaque fits u32");
        self.opaque_claiming(len, bytes)
    }

    /// An opaque whose length field says `claimed` while only `bytes` follow.
    pub fn opaque_claiming(mut self, claimed: u32, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(&claimed.to_be_bytes());
        self.0.extend_from_slice(bytes);
        let pad = (4 - bytes.len() % 4) % 4;
        self.0.extend_from_slice(&[0u8; 3][..pad]);
        self
    }

    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// What came back on a connection after a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// A whole record arrived (its payload).
    Record(Vec<u8>),
    /// The server closed the connection (EOF or reset) before a whole record.
    Closed,
    /// Nothing within the deadline, connection still open.
    Silent,
}

/// Reads one record (single fragment, at most 1 MiB) from `stream`.
pub async fn read_reply(stream: &mut TcpStream, deadline: Duration) -> Reply {
    let fut = async {
        let mut hdr = [0u8; 4];
        if stream.read_exact(&mut hdr).await.is_err() {
            return Reply::Closed;
        }
        let len = (u32::from_be_bytes(hdr) & !LAST_FRAGMENT) as usize;
        if len > 1 << 20 {
            return Reply::Record(Vec::new());
        }
        let mut body = vec![0u8; len];
        if stream.read_exact(&mut body).await.is_err() {
            return Reply::Closed;
        }
        Reply::Record(body)
    };
    tokio::time::timeout(deadline, fut)
        .await
        .unwrap_or(Reply::Silent)
}

/// The xid of a reply record, if it is long enough to have one.
pub fn reply_xid(payload: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(payload.get(..4)?.try_into().ok()?))
}

trait BorrowAuth {
    fn borrow_auth(&self) -> opaque_auth<'_>;
}

impl BorrowAuth for opaque_auth<'_> {
    fn borrow_auth(&self) -> opaque_auth<'_> {
        opaque_auth {
            flavor: self.flavor,
            body: nfs3_types::xdr_codec::Opaque::borrowed(self.body.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_call_is_a_well_formed_record() {
        let rec = nfs_null_call(0x0102_0304);
        // marker + xid, CALL, rpcvers 2, prog, vers, proc, cred(2 words), verf(2 words)
        assert_eq!(rec.len(), 4 + 40);
        assert_eq!(&rec[..4], &(0x8000_0000u32 | 40).to_be_bytes());
        assert_eq!(reply_xid(&rec[4..]), Some(0x0102_0304));
        assert_eq!(&rec[16..20], &100_003u32.to_be_bytes());
    }
}
