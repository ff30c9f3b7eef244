//! File handles are exact: a handle names one file, and any other bytes
//! (here, the reserved byte 3 of a cairn handle changed) name none of them
//! (RFC 1813: the server answers NFS3ERR_BADHANDLE or NFS3ERR_STALE).

use cairn_tests::{expect_status, mount, Creds, Gateway};
use nfs3_types::nfs3::{nfs_fh3, nfsstat3};

/// A handle names one file exactly: the same handle with its reserved byte
/// (byte 3) changed is not the file's, for every value of that byte.
#[tokio::test]
async fn a_handle_with_its_reserved_byte_changed_is_refused() {
    let _gw = Gateway::start();
    let mut nfs = mount(&_gw, Creds::root()).await;
    let root = nfs.root.clone();
    let fh = nfs.create(&root, "exact", 0o644).await.expect("create");
    nfs.getattr(&fh).await.expect("the file's own handle works");
    let bytes: Vec<u8> = fh.data.as_ref().to_vec();
    assert!(bytes.len() > 3, "a cairn handle is longer than 3 bytes");
    for value in (0..=255u8).filter(|v| *v != bytes[3]) {
        let mut changed = bytes.clone();
        changed[3] = value;
        let other = nfs_fh3 {
            data: nfs3_types::xdr_codec::Opaque::owned(changed),
        };
        expect_status(
            nfs.getattr(&other).await,
            &[nfsstat3::NFS3ERR_BADHANDLE, nfsstat3::NFS3ERR_STALE],
            &format!("GETATTR with byte 3 of the handle set to {value}"),
        );
    }
    let dir = nfs.create(&root, "other", 0o644).await.expect("create");
    let mut changed: Vec<u8> = root.data.as_ref().to_vec();
    changed[3] ^= 0x80;
    let bad_root = nfs_fh3 {
        data: nfs3_types::xdr_codec::Opaque::owned(changed),
    };
    expect_status(
        nfs.lookup(&bad_root, "exact").await,
        &[nfsstat3::NFS3ERR_BADHANDLE, nfsstat3::NFS3ERR_STALE],
        "LOOKUP in the root through a handle with byte 3 changed",
    );
    nfs.getattr(&dir)
        .await
        .expect("the untouched handles still work");
}
