//! LOOKUP, READLINK, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME and
//! LINK.

use cairn_metadata::{FileKind, Inode};
use nfs3_types::nfs3::{
    createhow3, mknoddata3, nfs_fh3, nfsstat3, sattr3, CREATE3resok, LINK3resfail, LINK3resok,
    LOOKUP3resfail, LOOKUP3resok, Nfs3Option, Nfs3Result, READLINK3resfail, READLINK3resok,
    REMOVE3resfail, REMOVE3resok, RENAME3resfail, RENAME3resok,
};

use super::{status, Ctx};
use crate::core::{CreateHow, FsError, SetAttr};
use crate::nfs::convert::{post_op, set_attr, wcc};
use crate::nfs::handle;
use crate::nfs::rpc::Reply;
use crate::nfs::xdr::{Garbage, Reader};

fn dirop<'a>(r: &mut Reader<'a>) -> Result<(nfs_fh3, &'a [u8]), Garbage> {
    let fh = r.fh()?;
    let name = r.opaque(1024, "name longer than 1024 bytes")?;
    Ok((fh, name))
}

pub async fn lookup(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let (fh, name) = dirop(r)?;
    let dir = match ctx.resolve(&fh).await {
        Ok(d) => d,
        Err(s) => {
            let res: Nfs3Result<LOOKUP3resok, LOOKUP3resfail> = Nfs3Result::Err((
                s,
                LOOKUP3resfail {
                    dir_attributes: Nfs3Option::None,
                },
            ));
            return Ok(ctx.ok().push(&res));
        }
    };
    let res = match ctx.fs.lookup(&ctx.cred, dir.id, name).await {
        Ok(inode) => Nfs3Result::Ok(LOOKUP3resok {
            object: handle::encode(&inode),
            obj_attributes: post_op(&inode),
            dir_attributes: post_op(&dir),
        }),
        Err(e) => Nfs3Result::Err((
            status(&e),
            LOOKUP3resfail {
                dir_attributes: post_op(&dir),
            },
        )),
    };
    Ok(ctx.ok().push(&res))
}

pub async fn readlink(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let fh = r.fh()?;
    let res = match ctx.resolve(&fh).await {
        Err(s) => Nfs3Result::Err((
            s,
            READLINK3resfail {
                symlink_attributes: Nfs3Option::None,
            },
        )),
        Ok(inode) => match ctx.fs.readlink(&ctx.cred, inode.id).await {
            Ok((inode, target)) => Nfs3Result::Ok(READLINK3resok {
                symlink_attributes: post_op(&inode),
                data: target.into(),
            }),
            Err(e) => Nfs3Result::Err((
                status(&e),
                READLINK3resfail {
                    symlink_attributes: post_op(&inode),
                },
            )),
        },
    };
    Ok(ctx.ok().push(&res))
}

/// The reply of every procedure that makes a new name: CREATE3res, MKDIR3res,
/// SYMLINK3res and MKNOD3res share one wire shape.
fn made(
    ctx: &Ctx<'_>,
    dir: Option<&Inode>,
    result: Result<Inode, FsError>,
    after_dir: Option<Inode>,
) -> Reply {
    let res: Nfs3Result<CREATE3resok, nfs3_types::nfs3::CREATE3resfail> = match result {
        Ok(inode) => Nfs3Result::Ok(CREATE3resok {
            obj: Nfs3Option::Some(handle::encode(&inode)),
            obj_attributes: post_op(&inode),
            dir_wcc: wcc(after_dir.as_ref().or(dir)),
        }),
        Err(e) => Nfs3Result::Err((
            status(&e),
            nfs3_types::nfs3::CREATE3resfail {
                dir_wcc: wcc(after_dir.as_ref().or(dir)),
            },
        )),
    };
    ctx.ok().push(&res)
}

fn failed(ctx: &Ctx<'_>, s: nfsstat3) -> Reply {
    let res: Nfs3Result<CREATE3resok, nfs3_types::nfs3::CREATE3resfail> =
        Nfs3Result::Err((s, nfs3_types::nfs3::CREATE3resfail { dir_wcc: wcc(None) }));
    ctx.ok().push(&res)
}

async fn dir_after(ctx: &Ctx<'_>, dir: &Inode) -> Option<Inode> {
    ctx.fs.getattr(dir.id).await.ok()
}

pub async fn create(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let (fh, name) = dirop(r)?;
    let how: createhow3 = r.fixed("createhow3")?;
    let dir = match ctx.resolve(&fh).await {
        Ok(d) => d,
        Err(s) => return Ok(failed(ctx, s)),
    };
    let how = match how {
        createhow3::UNCHECKED(a) => CreateHow::Unchecked(set_attr(&a)),
        createhow3::GUARDED(a) => CreateHow::Guarded(set_attr(&a)),
        createhow3::EXCLUSIVE(v) => CreateHow::Exclusive(v.0),
    };
    let result = ctx.fs.create(&ctx.cred, dir.id, name, how).await;
    Ok(made(ctx, Some(&dir), result, dir_after(ctx, &dir).await))
}

pub async fn mkdir(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let (fh, name) = dirop(r)?;
    let attrs: sattr3 = r.fixed("sattr3")?;
    let dir = match ctx.resolve(&fh).await {
        Ok(d) => d,
        Err(s) => return Ok(failed(ctx, s)),
    };
    let result = ctx
        .fs
        .mkdir(&ctx.cred, dir.id, name, set_attr(&attrs))
        .await;
    Ok(made(ctx, Some(&dir), result, dir_after(ctx, &dir).await))
}

pub async fn symlink(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let (fh, name) = dirop(r)?;
    let attrs: sattr3 = r.fixed("sattr3")?;
    let target = r.path()?;
    let dir = match ctx.resolve(&fh).await {
        Ok(d) => d,
        Err(s) => return Ok(failed(ctx, s)),
    };
    let attrs = SetAttr {
        mode: None,
        ..set_attr(&attrs)
    };
    let result = ctx
        .fs
        .symlink(&ctx.cred, dir.id, name, target.as_ref(), attrs)
        .await;
    Ok(made(ctx, Some(&dir), result, dir_after(ctx, &dir).await))
}

pub async fn mknod(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let (fh, name) = dirop(r)?;
    let what: mknoddata3 = r.fixed("mknoddata3")?;
    let dir = match ctx.resolve(&fh).await {
        Ok(d) => d,
        Err(s) => return Ok(failed(ctx, s)),
    };
    let (kind, rdev, attrs) = match what {
        mknoddata3::NF3CHR(d) => (
            FileKind::CharDev,
            (u64::from(d.spec.specdata1) << 32) | u64::from(d.spec.specdata2),
            d.dev_attributes,
        ),
        mknoddata3::NF3BLK(d) => (
            FileKind::BlockDev,
            (u64::from(d.spec.specdata1) << 32) | u64::from(d.spec.specdata2),
            d.dev_attributes,
        ),
        mknoddata3::NF3SOCK(a) => (FileKind::Socket, 0, a),
        mknoddata3::NF3FIFO(a) => (FileKind::Fifo, 0, a),
        mknoddata3::default => return Ok(failed(ctx, nfsstat3::NFS3ERR_BADTYPE)),
    };
    let result = ctx
        .fs
        .mknod(&ctx.cred, dir.id, name, kind, rdev, set_attr(&attrs))
        .await;
    Ok(made(ctx, Some(&dir), result, dir_after(ctx, &dir).await))
}

pub async fn remove(ctx: &Ctx<'_>, r: &mut Reader<'_>, dir_only: bool) -> Result<Reply, Garbage> {
    let (fh, name) = dirop(r)?;
    let outcome = match ctx.resolve(&fh).await {
        Err(s) => Err((s, None)),
        Ok(dir) => {
            let result = if dir_only {
                ctx.fs.rmdir(&ctx.cred, dir.id, name).await
            } else {
                ctx.fs.remove(&ctx.cred, dir.id, name).await
            };
            let after = dir_after(ctx, &dir).await;
            result
                .map(|()| after.clone())
                .map_err(|e| (status(&e), after))
        }
    };
    // REMOVE3res and RMDIR3res share one wire shape.
    let res: Nfs3Result<REMOVE3resok, REMOVE3resfail> = match outcome {
        Ok(after) => Nfs3Result::Ok(REMOVE3resok {
            dir_wcc: wcc(after.as_ref()),
        }),
        Err((s, after)) => Nfs3Result::Err((
            s,
            REMOVE3resfail {
                dir_wcc: wcc(after.as_ref()),
            },
        )),
    };
    Ok(ctx.ok().push(&res))
}

pub async fn rename(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let (from_fh, from) = dirop(r)?;
    let (to_fh, to) = dirop(r)?;
    let dirs = match (ctx.resolve(&from_fh).await, ctx.resolve(&to_fh).await) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(s), _) | (_, Err(s)) => Err(s),
    };
    let res: Nfs3Result<RENAME3resok, RENAME3resfail> = match dirs {
        Err(s) => Nfs3Result::Err((
            s,
            RENAME3resfail {
                fromdir_wcc: wcc(None),
                todir_wcc: wcc(None),
            },
        )),
        Ok((a, b)) => {
            let result = ctx.fs.rename(&ctx.cred, a.id, from, b.id, to).await;
            let (fa, ta) = (dir_after(ctx, &a).await, dir_after(ctx, &b).await);
            match result {
                Ok(()) => Nfs3Result::Ok(RENAME3resok {
                    fromdir_wcc: wcc(fa.as_ref()),
                    todir_wcc: wcc(ta.as_ref()),
                }),
                Err(e) => Nfs3Result::Err((
                    status(&e),
                    RENAME3resfail {
                        fromdir_wcc: wcc(fa.as_ref()),
                        todir_wcc: wcc(ta.as_ref()),
                    },
                )),
            }
        }
    };
    Ok(ctx.ok().push(&res))
}

pub async fn link(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let file_fh = r.fh()?;
    let (dir_fh, name) = dirop(r)?;
    let res: Nfs3Result<LINK3resok, LINK3resfail> =
        match (ctx.resolve(&file_fh).await, ctx.resolve(&dir_fh).await) {
            (Ok(file), Ok(dir)) => {
                let result = ctx.fs.link(&ctx.cred, file.id, dir.id, name).await;
                let after = dir_after(ctx, &dir).await;
                match result {
                    Ok(inode) => Nfs3Result::Ok(LINK3resok {
                        file_attributes: post_op(&inode),
                        linkdir_wcc: wcc(after.as_ref()),
                    }),
                    Err(e) => Nfs3Result::Err((
                        status(&e),
                        LINK3resfail {
                            file_attributes: post_op(&file),
                            linkdir_wcc: wcc(after.as_ref()),
                        },
                    )),
                }
            }
            (Err(s), _) | (_, Err(s)) => Nfs3Result::Err((
                s,
                LINK3resfail {
                    file_attributes: Nfs3Option::None,
                    linkdir_wcc: wcc(None),
                },
            )),
        };
    Ok(ctx.ok().push(&res))
}
