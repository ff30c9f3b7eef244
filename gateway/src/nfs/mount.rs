//! MOUNT v3 (RFC 1813, appendix I): MNT hands out the root handle (or the
//! handle of a directory below it), EXPORT lists the one export "/".

use nfs3_types::mount::{
    dirpath, export_node, exports, fhandle3, mountres3, mountres3_ok, mountstat3,
};
use nfs3_types::xdr_codec::{List, Opaque};

use super::nfs3::Ctx;
use super::rpc::Reply;
use super::xdr::{Garbage, Reader};
use crate::core::FsError;
use cairn_metadata::{FileKind, InodeId};

pub const PROGRAM: u32 = nfs3_types::mount::PROGRAM;
pub const VERSION: u32 = nfs3_types::mount::VERSION;

fn mount_status(e: &FsError) -> mountstat3 {
    match e {
        FsError::NotFound | FsError::Stale(_) => mountstat3::MNT3ERR_NOENT,
        FsError::NotDir => mountstat3::MNT3ERR_NOTDIR,
        FsError::Access | FsError::NotOwner => mountstat3::MNT3ERR_ACCES,
        FsError::NameTooLong => mountstat3::MNT3ERR_NAMETOOLONG,
        FsError::Invalid(_) => mountstat3::MNT3ERR_INVAL,
        _ => mountstat3::MNT3ERR_IO,
    }
}

pub async fn dispatch(ctx: &Ctx<'_>, proc_: u32, args: &[u8]) -> Reply {
    let mut r = Reader::new(args);
    let result: Result<Reply, Garbage> = match proc_ {
        0 => Ok(ctx.ok()),
        1 => mnt(ctx, &mut r).await,
        // DUMP: we keep no list of mounts (NFSv3 is stateless).
        2 => Ok(ctx.ok().push(&false)),
        // UMNT and UMNTALL: nothing to forget.
        3 => r
            .opaque(1024, "path longer than 1024 bytes")
            .map(|_| ctx.ok()),
        4 => Ok(ctx.ok()),
        5 => {
            let list: exports<'_, '_> = List(vec![export_node {
                ex_dir: dirpath(Opaque::borrowed(b"/")),
                ex_groups: List(Vec::new()),
            }]);
            Ok(ctx.ok().push(&list))
        }
        _ => return Reply::proc_unavail(ctx.xid),
    };
    result.unwrap_or_else(|_| Reply::garbage_args(ctx.xid))
}

async fn mnt(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let path = r.opaque(1024, "path longer than 1024 bytes")?;
    let mut inode = match ctx.fs.getattr(InodeId::ROOT).await {
        Ok(i) => i,
        Err(e) => return Ok(ctx.ok().push(&mountres3::Err(mount_status(&e)))),
    };
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        match ctx.fs.lookup(&ctx.cred, inode.id, part).await {
            Ok(next) => inode = next,
            Err(e) => return Ok(ctx.ok().push(&mountres3::Err(mount_status(&e)))),
        }
    }
    if inode.kind != FileKind::Dir {
        return Ok(ctx.ok().push(&mountres3::Err(mountstat3::MNT3ERR_NOTDIR)));
    }
    let fh = super::handle::encode(&inode);
    let res = mountres3::Ok(mountres3_ok {
        fhandle: fhandle3(fh.data),
        auth_flavors: vec![1],
    });
    Ok(ctx.ok().push(&res))
}
