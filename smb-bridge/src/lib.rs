//! The SMB bridge: a FUSE view of the gateway's filesystem core, a private
//! smb.conf generated from the gateway config, and supervision of Samba's
//! `smbd` over that view. It arrives with the SMB issue; this crate holds its
//! place in the workspace so dependencies already point the right way.
