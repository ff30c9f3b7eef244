//! ONC RPC over TCP (RFC 5531): the call header with its AUTH_SYS
//! credentials, and the reply header. Record marking is read in `conn.rs`.

use nfs3_types::rpc::{
    accept_stat_data, accepted_reply, auth_stat, msg_body, opaque_auth, rejected_reply, reply_body,
    rpc_msg,
};
use nfs3_types::xdr_codec::Pack;

use super::xdr::{Garbage, Reader};

/// The largest record accepted: a 1 MiB WRITE plus its headers.
pub const MAX_RECORD: usize = (1 << 20) + 64 * 1024;

/// The caller's identity as sent on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    Sys {
        uid: u32,
        gid: u32,
        gids: Vec<u32>,
    },
    /// A flavor we do not accept.
    Other(u32),
}

/// A decoded call header; `args` is the rest of the record.
#[derive(Debug)]
pub struct Call<'a> {
    pub xid: u32,
    pub rpcvers: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub auth: Auth,
    pub args: &'a [u8],
}

/// Why a record could not be taken as a call.
#[derive(Debug)]
pub enum CallError {
    /// Not a CALL, or cut short before the procedure: no answer is possible.
    Unanswerable(Garbage),
    /// A malformed verifier or header: answered GARBAGE_ARGS.
    Garbage { xid: u32, garbage: Garbage },
    /// A credential longer than 400 bytes, or an AUTH_SYS body that breaks
    /// its limits (more than 16 groups, a 255-byte machine name): answered
    /// MSG_DENIED / AUTH_ERROR / AUTH_BADCRED (RFC 5531 §8.2, §14).
    BadCred { xid: u32, garbage: Garbage },
}

/// The longest credential or verifier body (RFC 5531 `opaque_auth`).
const MAX_AUTH_BODY: u32 = 400;

/// Parses the call header.
pub fn parse_call(record: &[u8]) -> Result<Call<'_>, CallError> {
    let mut r = Reader::new(record);
    let xid = r.u32().map_err(CallError::Unanswerable)?;
    let head = |r: &mut Reader<'_>| -> Result<(u32, u32, u32, u32, u32), Garbage> {
        if r.u32()? != 0 {
            return Err(Garbage {
                at: 4,
                what: "not a CALL message",
            });
        }
        Ok((r.u32()?, r.u32()?, r.u32()?, r.u32()?, r.u32()?))
    };
    let (rpcvers, prog, vers, proc_, flavor) = head(&mut r).map_err(CallError::Unanswerable)?;
    let garbage = |garbage| CallError::Garbage { xid, garbage };
    let bad_cred = |garbage| CallError::BadCred { xid, garbage };
    let claimed = r
        .rest()
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    if claimed.is_some_and(|len| len > MAX_AUTH_BODY) {
        return Err(bad_cred(Garbage {
            at: r.position(),
            what: "credential longer than 400 bytes",
        }));
    }
    let body = r
        .opaque(MAX_AUTH_BODY as usize, "credential cut short")
        .map_err(garbage)?;
    let _verf_flavor = r.u32().map_err(garbage)?;
    let _verf = r
        .opaque(MAX_AUTH_BODY as usize, "verifier longer than 400 bytes")
        .map_err(garbage)?;
    let auth = match flavor {
        0 => Auth::None,
        1 => parse_auth_sys(body).map_err(bad_cred)?,
        other => Auth::Other(other),
    };
    Ok(Call {
        xid,
        rpcvers,
        prog,
        vers,
        proc_,
        auth,
        args: r.rest(),
    })
}

fn parse_auth_sys(body: &[u8]) -> Result<Auth, Garbage> {
    let mut r = Reader::new(body);
    let _stamp = r.u32()?;
    let _machine = r.opaque(255, "machine name longer than 255 bytes")?;
    let uid = r.u32()?;
    let gid = r.u32()?;
    let n = r.u32()? as usize;
    if n > 16 {
        return Err(Garbage {
            at: r.position(),
            what: "more than 16 supplementary groups",
        });
    }
    let mut gids = Vec::with_capacity(n);
    for _ in 0..n {
        gids.push(r.u32()?);
    }
    Ok(Auth::Sys { uid, gid, gids })
}

/// A reply under construction: room for the record mark, then the header.
pub struct Reply {
    pub buf: Vec<u8>,
    /// The share of the connection's reply budget this reply was built in,
    /// held until it is sent.
    pub hold: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Reply {
    fn with_body(xid: u32, body: reply_body<'_>) -> Self {
        let msg = rpc_msg {
            xid,
            body: msg_body::REPLY(body),
        };
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&[0, 0, 0, 0]);
        // Packing into a Vec cannot fail.
        let _ = msg.pack(&mut buf);
        Reply { buf, hold: None }
    }

    fn accepted(xid: u32, data: accept_stat_data) -> Self {
        Self::with_body(
            xid,
            reply_body::MSG_ACCEPTED(accepted_reply {
                verf: opaque_auth::default(),
                reply_data: data,
            }),
        )
    }

    /// SUCCESS; the caller packs the results after it.
    pub fn success(xid: u32) -> Self {
        Self::accepted(xid, accept_stat_data::SUCCESS)
    }

    pub fn garbage_args(xid: u32) -> Self {
        Self::accepted(xid, accept_stat_data::GARBAGE_ARGS)
    }

    pub fn proc_unavail(xid: u32) -> Self {
        Self::accepted(xid, accept_stat_data::PROC_UNAVAIL)
    }

    pub fn prog_unavail(xid: u32) -> Self {
        Self::accepted(xid, accept_stat_data::PROG_UNAVAIL)
    }

    pub fn prog_mismatch(xid: u32, low: u32, high: u32) -> Self {
        Self::accepted(xid, accept_stat_data::PROG_MISMATCH { low, high })
    }

    pub fn system_err(xid: u32) -> Self {
        Self::accepted(xid, accept_stat_data::SYSTEM_ERR)
    }

    pub fn rpc_mismatch(xid: u32) -> Self {
        Self::with_body(
            xid,
            reply_body::MSG_DENIED(rejected_reply::rpc_mismatch(2, 2)),
        )
    }

    pub fn auth_error(xid: u32, why: auth_stat) -> Self {
        Self::with_body(xid, reply_body::MSG_DENIED(rejected_reply::auth_error(why)))
    }

    /// Appends a result body.
    pub fn push<T: Pack>(mut self, value: &T) -> Self {
        self.buf.reserve(value.packed_size());
        let _ = value.pack(&mut self.buf);
        self
    }

    /// The finished record with its last-fragment mark.
    pub fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&(len | 0x8000_0000).to_be_bytes());
        self.buf
    }
}
