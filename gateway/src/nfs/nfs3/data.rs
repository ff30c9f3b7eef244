//! READ, WRITE and COMMIT.

use nfs3_types::nfs3::nfsstat3;
use nfs3_types::nfs3::{
    stable_how, writeverf3, COMMIT3resfail, COMMIT3resok, Nfs3Option, Nfs3Result, READ3resfail,
    READ3resok, WRITE3resfail, WRITE3resok,
};
use nfs3_types::xdr_codec::Pack;

use super::{status, Ctx};
use crate::core::{FileRef, Stability};
use crate::nfs::convert::{post_op, wcc};
use crate::nfs::handle;
use crate::nfs::rpc::Reply;
use crate::nfs::xdr::{Garbage, Reader};

/// The largest READ and WRITE we announce and accept.
pub const MAX_IO: u32 = 1 << 20;

pub async fn read(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let fh = r.fh()?;
    let offset = r.u64()?;
    let count = r.u32()?;
    // The handle's generation is checked in the read's own look at the
    // metadata: one transaction for the whole READ.
    let Some((id, generation)) = handle::decode(&fh) else {
        let res: Nfs3Result<READ3resok<'_>, READ3resfail> = Nfs3Result::Err((
            nfsstat3::NFS3ERR_BADHANDLE,
            READ3resfail {
                file_attributes: Nfs3Option::None,
            },
        ));
        return Ok(ctx.ok().push(&res));
    };
    // READ3resok is packed by hand around the bytes, which the core reads
    // straight into the reply: status, attributes, count, eof, then the
    // opaque data (length, bytes, padding to four).
    // The reply is as large as the data: wait for room in the connection's
    // budget before reading it.
    let count = count.min(MAX_IO);
    let hold = ctx.replies.reserve(count as usize + 256).await;
    let reply = ctx.ok();
    let header = |inode: &cairn_metadata::Inode, n: usize, eof: bool, out: &mut Vec<u8>| {
        let _ = nfsstat3::NFS3_OK.pack(out);
        let _ = post_op(inode).pack(out);
        let _ = (n as u32).pack(out);
        let _ = eof.pack(out);
        let _ = (n as u32).pack(out);
    };
    let file = FileRef {
        id,
        generation: Some(generation),
    };
    match ctx
        .fs
        .read_into(&ctx.cred, file, offset, count, reply.buf, header)
        .await
    {
        Ok(mut buf) => {
            buf.resize(buf.len().div_ceil(4) * 4, 0);
            Ok(Reply { buf, hold })
        }
        Err(e) => {
            // Attributes for the failure, when the file still is this one.
            let file_attributes = match ctx.resolve(&fh).await {
                Ok(inode) => post_op(&inode),
                Err(_) => Nfs3Option::None,
            };
            let res: Nfs3Result<READ3resok<'_>, READ3resfail> =
                Nfs3Result::Err((status(&e), READ3resfail { file_attributes }));
            Ok(ctx.ok().push(&res))
        }
    }
}

pub async fn write(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let fh = r.fh()?;
    let offset = r.u64()?;
    let count = r.u32()?;
    let how: stable_how = r.fixed("stable_how")?;
    let data = r.opaque(MAX_IO as usize, "write larger than 1 MiB")?;
    let data = &data[..data.len().min(count as usize)];
    let stability = match how {
        stable_how::UNSTABLE => Stability::Unstable,
        stable_how::DATA_SYNC => Stability::DataSync,
        stable_how::FILE_SYNC => Stability::FileSync,
    };
    let res = match ctx.resolve(&fh).await {
        Err(s) => Nfs3Result::Err((
            s,
            WRITE3resfail {
                file_wcc: wcc(None),
            },
        )),
        Ok(inode) => match ctx
            .fs
            .write(&ctx.cred, inode.id, offset, data.to_vec(), stability)
            .await
        {
            Ok((after, done)) => Nfs3Result::Ok(WRITE3resok {
                file_wcc: wcc(Some(&after)),
                count: data.len() as u32,
                committed: match done {
                    Stability::Unstable => stable_how::UNSTABLE,
                    Stability::DataSync => stable_how::DATA_SYNC,
                    Stability::FileSync => stable_how::FILE_SYNC,
                },
                verf: writeverf3(ctx.fs.write_verifier()),
            }),
            Err(e) => Nfs3Result::Err((
                status(&e),
                WRITE3resfail {
                    file_wcc: wcc(Some(&inode)),
                },
            )),
        },
    };
    Ok(ctx.ok().push(&res))
}

pub async fn commit(ctx: &Ctx<'_>, r: &mut Reader<'_>) -> Result<Reply, Garbage> {
    let fh = r.fh()?;
    let _offset = r.u64()?;
    let _count = r.u32()?;
    let res = match ctx.resolve(&fh).await {
        Err(s) => Nfs3Result::Err((
            s,
            COMMIT3resfail {
                file_wcc: wcc(None),
            },
        )),
        Ok(inode) => match ctx.fs.commit(inode.id).await {
            Ok(after) => Nfs3Result::Ok(COMMIT3resok {
                file_wcc: wcc(Some(&after)),
                verf: writeverf3(ctx.fs.write_verifier()),
            }),
            Err(e) => Nfs3Result::Err((
                status(&e),
                COMMIT3resfail {
                    file_wcc: wcc(Some(&inode)),
                },
            )),
        },
    };
    Ok(ctx.ok().push(&res))
}
