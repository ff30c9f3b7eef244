//! Unit tests of extended attributes: Linux's rules, and they go with
//! their inode.

use super::tests::{assert_consistent, file, open, root};
use super::*;

#[tokio::test]
async fn user_xattrs_follow_linux_rules_and_go_with_their_inode() {
    let (_dir, fs) = open(1 << 30);
    let f = file(&fs, InodeId::ROOT, "f").await;
    let owner = Credentials::user(1000, 1000);
    fs.setattr(
        &root(),
        f.id,
        SetAttr {
            uid: Some(1000),
            gid: Some(1000),
            mode: Some(0o644),
            ..SetAttr::default()
        },
        None,
    )
    .await
    .unwrap();
    let before = fs.getattr(f.id).await.unwrap().ctime;
    fs.setxattr(
        &owner,
        f.id,
        b"user.DOSATTRIB",
        b"\x01\x02",
        XattrSet::Create,
    )
    .await
    .unwrap();
    assert!(fs.getattr(f.id).await.unwrap().ctime >= before);
    assert_eq!(
        fs.getxattr(&owner, f.id, b"user.DOSATTRIB").await.unwrap(),
        b"\x01\x02"
    );
    assert!(matches!(
        fs.setxattr(&owner, f.id, b"user.DOSATTRIB", b"x", XattrSet::Create)
            .await,
        Err(FsError::Exists)
    ));
    assert!(matches!(
        fs.setxattr(&owner, f.id, b"user.other", b"x", XattrSet::Replace)
            .await,
        Err(FsError::NoXattr)
    ));
    // Others may read (mode 0644) but not write; other namespaces are not kept.
    let other = Credentials::user(2000, 2000);
    assert!(fs.getxattr(&other, f.id, b"user.DOSATTRIB").await.is_ok());
    assert!(matches!(
        fs.setxattr(&other, f.id, b"user.x", b"x", XattrSet::Either)
            .await,
        Err(FsError::Access)
    ));
    assert!(matches!(
        fs.setxattr(&root(), f.id, b"trusted.x", b"x", XattrSet::Either)
            .await,
        Err(FsError::NotSupported(_))
    ));
    let big = vec![0u8; MAX_XATTR_VALUE + 1];
    assert!(matches!(
        fs.setxattr(&owner, f.id, b"user.big", &big, XattrSet::Either)
            .await,
        Err(FsError::Invalid(_))
    ));
    fs.setxattr(&owner, f.id, b"user.a", b"1", XattrSet::Either)
        .await
        .unwrap();
    assert_eq!(
        fs.listxattr(&owner, f.id).await.unwrap(),
        vec![b"user.DOSATTRIB".to_vec(), b"user.a".to_vec()]
    );
    fs.removexattr(&owner, f.id, b"user.a").await.unwrap();
    assert!(matches!(
        fs.removexattr(&owner, f.id, b"user.a").await,
        Err(FsError::NoXattr)
    ));
    // Deleting the file drops its attributes with it.
    fs.remove(&root(), InodeId::ROOT, b"f").await.unwrap();
    let left = fs.metadata().read(|v| v.xattr_names(f.id)).unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_consistent(&fs);
}
