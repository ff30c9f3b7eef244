//! READDIR and READDIRPLUS. Cookies come from the core and stay valid while
//! the directory changes, so the cookie verifier is constant.

use nfs3_types::nfs3::{
    cookieverf3, dirlist3, dirlistplus3, entry3, entryplus3, nfs_fh3, nfsstat3, Nfs3Option,
    Nfs3Result, READDIR3resfail, READDIR3resok, READDIRPLUS3resfail, READDIRPLUS3resok,
};
use nfs3_types::xdr_codec::{List, Opaque};

use super::{status, Ctx};
use crate::core::DirItem;
use crate::nfs::convert::post_op;
use crate::nfs::handle;
use crate::nfs::rpc::Reply;
use crate::nfs::xdr::{Garbage, Reader};

/// Reply bytes besides the entries: RPC header, status, attributes,
/// verifier, list end and eof.
const OVERHEAD: usize = 160;
/// Bytes an entry takes in READDIR: "value follows", fileid, name length,
/// cookie, plus the padded name.
fn entry_size(name: &[u8]) -> usize {
    4 + 8 + 4 + name.len().div_ceil(4) * 4 + 8
}
/// What READDIRPLUS adds per entry: attributes and a handle.
const PLUS_EXTRA: usize = 4 + 84 + 4 + 4 + handle::LEN;
/// Entries fetched from the core per call at most.
const MAX_ENTRIES: usize = 4096;

struct Args {
    dir: nfs_fh3,
    cookie: u64,
    dircount: usize,
    maxcount: usize,
}

async fn list(
    ctx: &Ctx<'_>,
    args: &Args,
    plus: bool,
) -> Result<(cairn_metadata::Inode, Vec<DirItem>, bool), (nfsstat3, Option<cairn_metadata::Inode>)>
{
    let dir = ctx.resolve(&args.dir).await.map_err(|s| (s, None))?;
    let per_entry = if plus { 24 + PLUS_EXTRA } else { 24 };
    let want = (args.maxcount.saturating_sub(OVERHEAD) / per_entry + 1).clamp(1, MAX_ENTRIES);
    let (items, eof) = ctx
        .fs
        .readdir(&ctx.cred, dir.id, args.cookie, want, plus)
        .await
        .map_err(|e| (status(&e), Some(dir.clone())))?;
    // Keep what fits in both budgets; the client asks again for the rest.
    let mut used = OVERHEAD;
    let mut dir_used = 0;
    let mut kept = Vec::with_capacity(items.len());
    let total = items.len();
    for item in items {
        let size = entry_size(&item.name);
        let full = size + if plus { PLUS_EXTRA } else { 0 };
        if used + full > args.maxcount || dir_used + size > args.dircount {
            break;
        }
        used += full;
        dir_used += size;
        kept.push(item);
    }
    if kept.is_empty() && total > 0 {
        return Err((nfsstat3::NFS3ERR_TOOSMALL, Some(dir)));
    }
    let eof = eof && kept.len() == total;
    Ok((dir, kept, eof))
}

pub async fn readdir(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let dir = r.fh()?;
    let cookie = r.u64()?;
    let _verf: cookieverf3 = r.fixed("cookieverf3")?;
    let count = r.u32()? as usize;
    let args = Args {
        dir,
        cookie,
        dircount: count,
        maxcount: count,
    };
    let hold = ctx.replies.reserve(args.maxcount).await;
    let res = match list(ctx, &args, false).await {
        Ok((dir, items, eof)) => Nfs3Result::Ok(READDIR3resok {
            dir_attributes: post_op(&dir),
            cookieverf: cookieverf3::default(),
            reply: dirlist3 {
                entries: List(
                    items
                        .into_iter()
                        .map(|i| entry3 {
                            fileid: i.id.0,
                            name: i.name.into(),
                            cookie: i.cookie,
                        })
                        .collect(),
                ),
                eof,
            },
        }),
        Err((s, dir)) => Nfs3Result::Err((
            s,
            READDIR3resfail {
                dir_attributes: dir.as_ref().map_or(Nfs3Option::None, post_op),
            },
        )),
    };
    let mut reply = ctx.ok().push(&res);
    reply.hold = hold;
    Ok(reply)
}

pub async fn readdirplus(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let dir = r.fh()?;
    let cookie = r.u64()?;
    let _verf: cookieverf3 = r.fixed("cookieverf3")?;
    let dircount = r.u32()? as usize;
    let maxcount = r.u32()? as usize;
    let args = Args {
        dir,
        cookie,
        dircount: dircount.max(512),
        maxcount,
    };
    let hold = ctx.replies.reserve(args.maxcount).await;
    let res = match list(ctx, &args, true).await {
        Ok((dir, items, eof)) => Nfs3Result::Ok(READDIRPLUS3resok {
            dir_attributes: post_op(&dir),
            cookieverf: cookieverf3::default(),
            reply: dirlistplus3 {
                entries: List(
                    items
                        .into_iter()
                        .map(|i| entryplus3 {
                            fileid: i.id.0,
                            name: nfs3_types::nfs3::filename3(Opaque::owned(i.name)),
                            cookie: i.cookie,
                            name_attributes: i.attr.as_ref().map_or(Nfs3Option::None, post_op),
                            name_handle: i
                                .attr
                                .as_ref()
                                .map_or(Nfs3Option::None, |a| Nfs3Option::Some(handle::encode(a))),
                        })
                        .collect(),
                ),
                eof,
            },
        }),
        Err((s, dir)) => Nfs3Result::Err((
            s,
            READDIRPLUS3resfail {
                dir_attributes: dir.as_ref().map_or(Nfs3Option::None, post_op),
            },
        )),
    };
    let mut reply = ctx.ok().push(&res);
    reply.hold = hold;
    Ok(reply)
}
