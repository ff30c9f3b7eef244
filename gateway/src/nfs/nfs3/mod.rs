//! NFSv3 (RFC 1813): argument decoding and the call of the core for each
//! procedure. No state lives here; the caller's credentials reach every call.

mod attrs;
mod data;
mod dirs;
mod fsinfo;
mod names;

use cairn_metadata::Inode;
use nfs3_types::nfs3::{nfs_fh3, nfsstat3};

use super::conn::ReplyBudget;
use super::rpc::Reply;
use super::xdr::{Garbage, Reader};
use super::{handle, status::nfs_status};
use crate::core::{Credentials, Fs, FsError};

pub const PROGRAM: u32 = nfs3_types::nfs3::PROGRAM;
pub const VERSION: u32 = nfs3_types::nfs3::VERSION;

/// What a procedure needs: the core, the caller, the call's xid, and the
/// connection's reply budget (which large replies reserve before building).
pub struct Ctx<'a> {
    pub fs: &'a Fs,
    pub cred: Credentials,
    pub xid: u32,
    pub replies: &'a ReplyBudget,
}

impl Ctx<'_> {
    /// The live inode a handle names.
    pub async fn resolve(&self, fh: &nfs_fh3) -> Result<Inode, nfsstat3> {
        let (id, generation) = handle::decode(fh).ok_or(nfsstat3::NFS3ERR_BADHANDLE)?;
        match self.fs.getattr(id).await {
            Ok(inode) if inode.generation == generation => Ok(inode),
            Ok(_) => Err(nfsstat3::NFS3ERR_STALE),
            Err(e) => Err(nfs_status(&e)),
        }
    }

    pub fn ok(&self) -> Reply {
        Reply::success(self.xid)
    }
}

pub fn status(e: &FsError) -> nfsstat3 {
    nfs_status(e)
}

/// Runs procedure `proc_` with its encoded arguments.
pub async fn dispatch(ctx: &Ctx<'_>, proc_: u32, args: &[u8]) -> Reply {
    let mut r = Reader::new(args);
    let result: Result<Reply, Garbage> = match proc_ {
        0 => Ok(ctx.ok()),
        1 => attrs::getattr(ctx, &mut r).await,
        2 => attrs::setattr(ctx, &mut r).await,
        3 => names::lookup(ctx, &mut r).await,
        4 => attrs::access(ctx, &mut r).await,
        5 => names::readlink(ctx, &mut r).await,
        6 => data::read(ctx, &mut r).await,
        7 => data::write(ctx, &mut r).await,
        8 => names::create(ctx, &mut r).await,
        9 => names::mkdir(ctx, &mut r).await,
        10 => names::symlink(ctx, &mut r).await,
        11 => names::mknod(ctx, &mut r).await,
        12 => names::remove(ctx, &mut r, false).await,
        13 => names::remove(ctx, &mut r, true).await,
        14 => names::rename(ctx, &mut r).await,
        15 => names::link(ctx, &mut r).await,
        16 => dirs::readdir(ctx, &mut r).await,
        17 => dirs::readdirplus(ctx, &mut r).await,
        18 => fsinfo::fsstat(ctx, &mut r).await,
        19 => fsinfo::fsinfo(ctx, &mut r).await,
        20 => fsinfo::pathconf(ctx, &mut r).await,
        21 => data::commit(ctx, &mut r).await,
        _ => return Reply::proc_unavail(ctx.xid),
    };
    match result {
        Ok(reply) => reply,
        Err(garbage) => {
            tracing::debug!(xid = ctx.xid, proc_, %garbage, "garbage arguments");
            Reply::garbage_args(ctx.xid)
        }
    }
}
