//! Portmapper v2 (RFC 1833), only as much as clients need to find us
//! without an rpcbind: GETPORT answers this one port for NFSv3 and MOUNT v3
//! over TCP, DUMP lists them.

use nfs3_types::portmap::{mapping, IPPROTO_TCP};
use nfs3_types::xdr_codec::List;

use super::rpc::Reply;
use super::xdr::{Garbage, Reader};

pub const PROGRAM: u32 = nfs3_types::portmap::PROGRAM;
pub const VERSION: u32 = nfs3_types::portmap::VERSION;

fn ours(port: u16) -> Vec<mapping> {
    [
        (PROGRAM, VERSION),
        (super::nfs3::PROGRAM, 3),
        (super::mount::PROGRAM, 3),
    ]
    .into_iter()
    .map(|(prog, vers)| mapping {
        prog,
        vers,
        prot: IPPROTO_TCP,
        port: u32::from(port),
    })
    .collect()
}

pub fn dispatch(xid: u32, proc_: u32, args: &[u8], port: u16) -> Reply {
    let mut r = Reader::new(args);
    let result: Result<Reply, Garbage> = match proc_ {
        0 => Ok(Reply::success(xid)),
        3 => (|| {
            let (prog, vers, prot, _port) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
            let found = ours(port)
                .iter()
                .any(|m| m.prog == prog && m.vers == vers && m.prot == prot);
            Ok(Reply::success(xid).push(&if found { u32::from(port) } else { 0 }))
        })(),
        4 => Ok(Reply::success(xid).push(&List(ours(port)))),
        _ => return Reply::proc_unavail(xid),
    };
    result.unwrap_or_else(|_| Reply::garbage_args(xid))
}
