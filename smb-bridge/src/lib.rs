//! The SMB bridge: a private smb.conf generated from the gateway's shares,
//! Samba users in a private tdbsam, and supervision of Samba's `smbd`
//! serving the gateway's FUSE view. The FUSE view itself is the gateway's
//! (it needs the filesystem core); this crate only knows where it is
//! mounted, and its generated config refuses connections while it is not.

mod conf;
mod error;
mod layout;
mod smbd;
mod users;

pub use conf::{render, write_conf, Share};
pub use error::SmbError;
pub use layout::Layout;
pub use smbd::{SmbdStatus, Supervisor};
pub use users::{add_user, ensure_group, SMB_GROUP};
