//! FSSTAT, FSINFO and PATHCONF: real capacity and our limits.

use nfs3_types::nfs3::{
    nfstime3, FSINFO3resfail, FSINFO3resok, FSSTAT3resfail, FSSTAT3resok, Nfs3Option, Nfs3Result,
    PATHCONF3resfail, PATHCONF3resok, FSF3_CANSETTIME, FSF3_HOMOGENEOUS, FSF3_LINK, FSF3_SYMLINK,
};

use super::data::MAX_IO;
use super::{status, Ctx};
use crate::core::{MAX_FILE_SIZE, MAX_LINKS, MAX_NAME};
use crate::nfs::convert::post_op;
use crate::nfs::rpc::Reply;
use crate::nfs::xdr::{Garbage, Reader};

pub async fn fsstat(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let fh = r.fh()?;
    let res = match ctx.resolve(&fh).await {
        Err(s) => Nfs3Result::Err((
            s,
            FSSTAT3resfail {
                obj_attributes: Nfs3Option::None,
            },
        )),
        Ok(inode) => match ctx.fs.statfs().await {
            Ok(st) => Nfs3Result::Ok(FSSTAT3resok {
                obj_attributes: post_op(&inode),
                tbytes: st.total_bytes,
                fbytes: st.free_bytes,
                abytes: st.avail_bytes,
                tfiles: st.total_files,
                ffiles: st.free_files,
                afiles: st.free_files,
                invarsec: 0,
            }),
            Err(e) => Nfs3Result::Err((
                status(&e),
                FSSTAT3resfail {
                    obj_attributes: post_op(&inode),
                },
            )),
        },
    };
    Ok(ctx.ok().push(&res))
}

pub async fn fsinfo(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let fh = r.fh()?;
    let res = match ctx.resolve(&fh).await {
        Err(s) => Nfs3Result::Err((
            s,
            FSINFO3resfail {
                obj_attributes: Nfs3Option::None,
            },
        )),
        Ok(inode) => Nfs3Result::Ok(FSINFO3resok {
            obj_attributes: post_op(&inode),
            rtmax: MAX_IO,
            rtpref: MAX_IO,
            rtmult: 4096,
            wtmax: MAX_IO,
            wtpref: MAX_IO,
            wtmult: 4096,
            dtpref: 64 * 1024,
            maxfilesize: MAX_FILE_SIZE,
            time_delta: nfstime3 {
                seconds: 0,
                nseconds: 1,
            },
            properties: FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME,
        }),
    };
    Ok(ctx.ok().push(&res))
}

pub async fn pathconf(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let fh = r.fh()?;
    let res = match ctx.resolve(&fh).await {
        Err(s) => Nfs3Result::Err((
            s,
            PATHCONF3resfail {
                obj_attributes: Nfs3Option::None,
            },
        )),
        Ok(inode) => Nfs3Result::Ok(PATHCONF3resok {
            obj_attributes: post_op(&inode),
            linkmax: MAX_LINKS,
            name_max: MAX_NAME as u32,
            no_trunc: true,
            chown_restricted: true,
            case_insensitive: false,
            case_preserving: true,
        }),
    };
    Ok(ctx.ok().push(&res))
}
