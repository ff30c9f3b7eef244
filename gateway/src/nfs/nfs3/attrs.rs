//! GETATTR, SETATTR and ACCESS.

use nfs3_types::nfs3::{
    sattr3, sattrguard3, ACCESS3resfail, ACCESS3resok, GETATTR3resok, Nfs3Option, Nfs3Result,
    SETATTR3resfail, SETATTR3resok, ACCESS3_DELETE, ACCESS3_EXECUTE, ACCESS3_EXTEND,
    ACCESS3_LOOKUP, ACCESS3_MODIFY, ACCESS3_READ,
};
use nfs3_types::xdr_codec::Void;

use super::{status, Ctx};
use crate::core::perm::{EXEC, READ, WRITE};
use crate::nfs::convert::{fattr, guard_time, post_op, set_attr, wcc};
use crate::nfs::rpc::Reply;
use crate::nfs::xdr::{Garbage, Reader};
use cairn_metadata::FileKind;

pub async fn getattr(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let fh = r.fh()?;
    let res: Nfs3Result<GETATTR3resok, Void> = match ctx.resolve(&fh).await {
        Ok(inode) => Nfs3Result::Ok(GETATTR3resok {
            obj_attributes: fattr(&inode),
        }),
        Err(s) => Nfs3Result::Err((s, Void)),
    };
    Ok(ctx.ok().push(&res))
}

pub async fn setattr(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let fh = r.fh()?;
    let attrs: sattr3 = r.fixed("sattr3")?;
    let guard: sattrguard3 = r.fixed("sattrguard3")?;
    let inode = match ctx.resolve(&fh).await {
        Ok(i) => i,
        Err(s) => {
            let res: Nfs3Result<SETATTR3resok, SETATTR3resfail> =
                Nfs3Result::Err((s, SETATTR3resfail { obj_wcc: wcc(None) }));
            return Ok(ctx.ok().push(&res));
        }
    };
    let guard = match guard {
        Nfs3Option::Some(t) => Some(guard_time(t)),
        Nfs3Option::None => None,
    };
    let res = match ctx
        .fs
        .setattr(&ctx.cred, inode.id, set_attr(&attrs), guard)
        .await
    {
        Ok(after) => Nfs3Result::Ok(SETATTR3resok {
            obj_wcc: wcc(Some(&after)),
        }),
        Err(e) => Nfs3Result::Err((
            status(&e),
            SETATTR3resfail {
                obj_wcc: wcc(Some(&inode)),
            },
        )),
    };
    Ok(ctx.ok().push(&res))
}

pub async fn access(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let fh = r.fh()?;
    let want = r.u32()?;
    let inode = match ctx.resolve(&fh).await {
        Ok(i) => i,
        Err(s) => {
            let res: Nfs3Result<ACCESS3resok, ACCESS3resfail> = Nfs3Result::Err((
                s,
                ACCESS3resfail {
                    obj_attributes: Nfs3Option::None,
                },
            ));
            return Ok(ctx.ok().push(&res));
        }
    };
    let res = match ctx.fs.permissions(&ctx.cred, inode.id).await {
        Ok((inode, bits)) => {
            let is_dir = inode.kind == FileKind::Dir;
            let mut granted = 0;
            if bits & READ != 0 {
                granted |= ACCESS3_READ;
            }
            if bits & WRITE != 0 {
                granted |= ACCESS3_MODIFY | ACCESS3_EXTEND;
                if is_dir {
                    granted |= ACCESS3_DELETE;
                }
            }
            if bits & EXEC != 0 {
                granted |= if is_dir {
                    ACCESS3_LOOKUP
                } else {
                    ACCESS3_EXECUTE
                };
            }
            Nfs3Result::Ok(ACCESS3resok {
                obj_attributes: post_op(&inode),
                access: granted & want,
            })
        }
        Err(e) => Nfs3Result::Err((
            status(&e),
            ACCESS3resfail {
                obj_attributes: Nfs3Option::None,
            },
        )),
    };
    Ok(ctx.ok().push(&res))
}
