//! NFSv3 connections for tests over `nfs3_client`: explicit ports (no
//! rpcbind), AUTH_SYS credentials, an optional local source address, a
//! deadline on every call, and one method per procedure that returns the
//! `resok` body or the `nfsstat3` as an [`NfsError`].

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use nfs3_client::io::{AsyncRead, AsyncWrite};
use nfs3_client::net::Connector;
use nfs3_client::{MountClient, Nfs3Client, RpcError};
use nfs3_types::mount::dirpath;
use nfs3_types::nfs3::{
    createhow3, createverf3, diropargs3, entry3, fattr3, filename3, nfs_fh3, nfspath3, nfsstat3,
    nfstime3, sattr3, set_mode3, stable_how, symlinkdata3, writeverf3, ACCESS3args, COMMIT3args,
    COMMIT3resok, CREATE3args, FSINFO3args, FSINFO3resok, FSSTAT3args, FSSTAT3resok, GETATTR3args,
    LINK3args, LOOKUP3args, MKDIR3args, Nfs3Option, Nfs3Result, READ3args, READDIR3args,
    READDIR3resok, READDIRPLUS3args, READDIRPLUS3resok, READLINK3args, REMOVE3args, RENAME3args,
    RMDIR3args, SETATTR3args, SYMLINK3args, WRITE3args, WRITE3resok,
};
use nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_types::xdr_codec::Opaque;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Deadline for one RPC: generous for a debug build on two shared cores,
/// but a hung server fails the test instead of hanging the suite.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The transport every client here uses: a TCP stream whose reads turn EOF
/// into an error. (`nfs3_client`'s own `TokioIo` passes `Ok(0)` through, and
/// its `async_read_exact` then spins forever on a closed connection, which
/// is exactly what a killed gateway leaves behind.)
#[derive(Debug)]
pub struct Io(pub TcpStream);

impl AsyncRead for Io {
    async fn async_read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf).await?;
        if n == 0 && !buf.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(n)
    }
}

impl AsyncWrite for Io {
    async fn async_write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf).await?;
        if n == 0 && !buf.is_empty() {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        Ok(n)
    }
}

/// AUTH_SYS credentials sent with every call of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl Creds {
    pub fn root() -> Self {
        Self::user(0, 0)
    }

    pub fn user(uid: u32, gid: u32) -> Self {
        Self {
            uid,
            gid,
            gids: vec![gid],
        }
    }

    pub fn opaque_auth(&self) -> opaque_auth<'static> {
        opaque_auth::auth_unix(&auth_unix {
            stamp: 0,
            machinename: Opaque::borrowed(b"cairn-tests"),
            uid: self.uid,
            gid: self.gid,
            gids: self.gids.clone(),
        })
    }
}

/// A failed NFS call: either the server answered with a status, or the call
/// itself failed (transport, RPC-level rejection, timeout).
#[derive(Debug)]
pub enum NfsError {
    Status(nfsstat3),
    Rpc(RpcError),
    Mount(String),
    Timeout(&'static str),
    Protocol(String),
}

impl NfsError {
    /// The NFS status, if the server answered with one.
    pub fn status(&self) -> Option<nfsstat3> {
        match self {
            Self::Status(s) => Some(*s),
            _ => None,
        }
    }

    /// True when the connection is gone (refused, reset, closed, timed out).
    pub fn is_transport(&self) -> bool {
        match self {
            Self::Rpc(e) => !e.is_connection_reusable(),
            Self::Timeout(_) => true,
            Self::Mount(_) | Self::Status(_) | Self::Protocol(_) => false,
        }
    }
}

impl std::fmt::Display for NfsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(s) => write!(f, "server answered {s}"),
            Self::Rpc(e) => write!(f, "RPC failed: {e}"),
            Self::Mount(e) => write!(f, "mount failed: {e}"),
            Self::Timeout(what) => write!(f, "{what}: no reply within {CALL_TIMEOUT:?}"),
            Self::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

impl std::error::Error for NfsError {}

pub type Result<T> = std::result::Result<T, NfsError>;

/// Connects from a chosen local address (any port), for tests that must come
/// from, say, 127.0.0.2. Sets TCP_NODELAY: RPCs are small request/reply pairs.
#[derive(Clone, Copy, Debug, Default)]
pub struct SourceConnector {
    pub local_ip: Option<IpAddr>,
}

impl Connector for SourceConnector {
    type Connection = Io;

    async fn connect(&self, addr: SocketAddr) -> std::io::Result<Io> {
        self.connect_with_port(addr, 0).await
    }

    async fn connect_with_port(&self, addr: SocketAddr, local_port: u16) -> std::io::Result<Io> {
        Ok(Io(tcp_connect_from(addr, self.local_ip, local_port).await?))
    }
}

/// A TCP connection to `addr`, bound first to `local_ip:local_port` if given.
pub async fn tcp_connect_from(
    addr: SocketAddr,
    local_ip: Option<IpAddr>,
    local_port: u16,
) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = local_ip {
        socket.bind(SocketAddr::new(ip, local_port))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn deadline<T, F>(what: &'static str, fut: F) -> Result<T>
where
    F: Future<Output = std::result::Result<T, RpcError>>,
{
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Err(_) => Err(NfsError::Timeout(what)),
        Ok(Err(e)) => Err(NfsError::Rpc(e)),
        Ok(Ok(v)) => Ok(v),
    }
}

fn ok<T, E>(res: Nfs3Result<T, E>) -> Result<T> {
    match res {
        Nfs3Result::Ok(v) => Ok(v),
        Nfs3Result::Err((status, _)) => Err(NfsError::Status(status)),
    }
}

fn name(n: &[u8]) -> filename3<'_> {
    filename3(Opaque::borrowed(n))
}

fn dirop<'a>(dir: &nfs_fh3, n: &'a [u8]) -> diropargs3<'a> {
    diropargs3 {
        dir: dir.clone(),
        name: name(n),
    }
}

/// A `sattr3` that sets only the mode.
pub fn mode_attr(mode: u32) -> sattr3 {
    sattr3 {
        mode: set_mode3::Some(mode),
        ..Default::default()
    }
}

/// One entry of a READDIRPLUS listing, owned.
#[derive(Clone, Debug)]
pub struct PlusEntry {
    pub fileid: u64,
    pub name: Vec<u8>,
    pub cookie: u64,
    pub attrs: Option<fattr3>,
    pub handle: Option<nfs_fh3>,
}

/// A mounted export: an NFS connection plus the root handle.
pub struct Nfs {
    pub client: Nfs3Client<Io>,
    pub root: nfs_fh3,
    pub addr: SocketAddr,
    pub creds: Creds,
    pub local_ip: Option<IpAddr>,
    /// FSINFO's preferred read and write sizes, capped at 1 MiB.
    pub rtpref: u32,
    pub wtpref: u32,
}

impl Nfs {
    /// Mounts `/` on the gateway at `addr` (NFS and MOUNT on the same port).
    pub async fn connect(addr: SocketAddr, creds: Creds) -> Result<Self> {
        Self::connect_from(addr, creds, None).await
    }

    /// Like [`connect`](Self::connect), from the local address `local_ip`.
    pub async fn connect_from(
        addr: SocketAddr,
        creds: Creds,
        local_ip: Option<IpAddr>,
    ) -> Result<Self> {
        let connector = SourceConnector { local_ip };
        let auth = creds.opaque_auth();
        let mount_io = tokio::time::timeout(CALL_TIMEOUT, connector.connect(addr))
            .await
            .map_err(|_| NfsError::Timeout("connect"))?
            .map_err(|e| NfsError::Rpc(RpcError::Io(e)))?;
        let mut mount = MountClient::new_with_auth(mount_io, auth.clone(), opaque_auth::default());
        let mnt = tokio::time::timeout(CALL_TIMEOUT, mount.mnt(dirpath(Opaque::borrowed(b"/"))))
            .await
            .map_err(|_| NfsError::Timeout("MNT"))?
            .map_err(|e| NfsError::Mount(e.to_string()))?;
        drop(mount);
        let root = nfs_fh3 {
            data: mnt.fhandle.0.clone(),
        };
        let mut nfs = Self {
            client: Self::open_client(addr, &creds, local_ip).await?,
            root,
            addr,
            creds,
            local_ip,
            rtpref: 1 << 20,
            wtpref: 1 << 20,
        };
        let info = nfs.fsinfo().await?;
        nfs.rtpref = info.rtpref.clamp(4096, 1 << 20);
        nfs.wtpref = info.wtpref.clamp(4096, 1 << 20);
        Ok(nfs)
    }

    async fn open_client(
        addr: SocketAddr,
        creds: &Creds,
        local_ip: Option<IpAddr>,
    ) -> Result<Nfs3Client<Io>> {
        let io = tokio::time::timeout(CALL_TIMEOUT, SourceConnector { local_ip }.connect(addr))
            .await
            .map_err(|_| NfsError::Timeout("connect"))?
            .map_err(|e| NfsError::Rpc(RpcError::Io(e)))?;
        Ok(Nfs3Client::new_with_auth(
            io,
            creds.opaque_auth(),
            opaque_auth::default(),
        ))
    }

    /// A second connection to the same gateway as another user; handles from
    /// this one stay valid there.
    pub async fn as_user(&self, creds: Creds) -> Result<Self> {
        Ok(Self {
            client: Self::open_client(self.addr, &creds, self.local_ip).await?,
            root: self.root.clone(),
            addr: self.addr,
            creds,
            local_ip: self.local_ip,
            rtpref: self.rtpref,
            wtpref: self.wtpref,
        })
    }

    /// Opens a fresh TCP connection (after a restart, say), keeping the root
    /// handle this client already had.
    pub async fn reconnect(&mut self) -> Result<()> {
        self.client = Self::open_client(self.addr, &self.creds, self.local_ip).await?;
        Ok(())
    }

    pub async fn null(&mut self) -> Result<()> {
        deadline("NULL", self.client.null()).await
    }

    pub async fn getattr(&mut self, fh: &nfs_fh3) -> Result<fattr3> {
        let args = GETATTR3args { object: fh.clone() };
        let res = deadline("GETATTR", self.client.getattr(&args)).await?;
        Ok(ok(res)?.obj_attributes)
    }

    pub async fn setattr(&mut self, fh: &nfs_fh3, attrs: sattr3) -> Result<()> {
        self.setattr_guarded(fh, attrs, None).await
    }

    /// SETATTR with an optional ctime guard.
    pub async fn setattr_guarded(
        &mut self,
        fh: &nfs_fh3,
        attrs: sattr3,
        guard: Option<nfstime3>,
    ) -> Result<()> {
        let args = SETATTR3args {
            object: fh.clone(),
            new_attributes: attrs,
            guard: match guard {
                Some(t) => Nfs3Option::Some(t),
                None => Nfs3Option::None,
            },
        };
        let res = deadline("SETATTR", self.client.setattr(&args)).await?;
        ok(res).map(|_| ())
    }

    pub async fn lookup(&mut self, dir: &nfs_fh3, n: impl AsRef<[u8]>) -> Result<nfs_fh3> {
        let args = LOOKUP3args {
            what: dirop(dir, n.as_ref()),
        };
        let res = deadline("LOOKUP", self.client.lookup(&args)).await?;
        Ok(ok(res)?.object)
    }

    /// Looks up a `/`-separated path from the root.
    pub async fn lookup_path(&mut self, path: &str) -> Result<nfs_fh3> {
        let mut fh = self.root.clone();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            fh = self.lookup(&fh, part).await?;
        }
        Ok(fh)
    }

    /// ACCESS: the subset of `mask` the server grants.
    pub async fn access(&mut self, fh: &nfs_fh3, mask: u32) -> Result<u32> {
        let args = ACCESS3args {
            object: fh.clone(),
            access: mask,
        };
        let res = deadline("ACCESS", self.client.access(&args)).await?;
        Ok(ok(res)?.access)
    }

    pub async fn readlink(&mut self, fh: &nfs_fh3) -> Result<Vec<u8>> {
        let args = READLINK3args {
            symlink: fh.clone(),
        };
        let res = deadline("READLINK", self.client.readlink(&args)).await?;
        Ok(ok(res)?.data.0.into_owned())
    }

    /// One READ: the data and the eof flag.
    pub async fn read(&mut self, fh: &nfs_fh3, offset: u64, count: u32) -> Result<(Vec<u8>, bool)> {
        let args = READ3args {
            file: fh.clone(),
            offset,
            count,
        };
        let res = deadline("READ", self.client.read(&args)).await?;
        let res = ok(res)?;
        if res.data.len() != res.count as usize {
            return Err(NfsError::Protocol(format!(
                "READ count {} but {} data bytes",
                res.count,
                res.data.len()
            )));
        }
        Ok((res.data.into_owned(), res.eof))
    }

    /// Reads from `offset` until EOF.
    pub async fn read_to_end(&mut self, fh: &nfs_fh3, mut offset: u64) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let (data, eof) = self.read(fh, offset, self.rtpref).await?;
            offset += data.len() as u64;
            out.extend_from_slice(&data);
            if eof {
                return Ok(out);
            }
            if data.is_empty() {
                return Err(NfsError::Protocol(format!(
                    "READ at {offset} returned no data and no eof"
                )));
            }
        }
    }

    /// The whole file.
    pub async fn read_all(&mut self, fh: &nfs_fh3) -> Result<Vec<u8>> {
        self.read_to_end(fh, 0).await
    }

    /// One WRITE; checks the server took all of `data`.
    pub async fn write(
        &mut self,
        fh: &nfs_fh3,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> Result<WRITE3resok> {
        let count = u32::try_from(data.len()).expect("write fits u32");
        let args = WRITE3args {
            file: fh.clone(),
            offset,
            count,
            stable,
            data: Opaque::borrowed(data),
        };
        let res = deadline("WRITE", self.client.write(&args)).await?;
        let res = ok(res)?;
        if res.count != count {
            return Err(NfsError::Protocol(format!(
                "WRITE of {count} bytes at {offset} wrote {}",
                res.count
            )));
        }
        Ok(res)
    }

    /// Writes `data` at `offset` in `wtpref` pieces; returns the verifier of
    /// the last reply and the weakest `committed` level seen.
    pub async fn write_all(
        &mut self,
        fh: &nfs_fh3,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> Result<(writeverf3, stable_how)> {
        let mut verf = writeverf3::default();
        let mut weakest = stable_how::FILE_SYNC;
        for (i, piece) in data.chunks(self.wtpref as usize).enumerate() {
            let off = offset + (i * self.wtpref as usize) as u64;
            let res = self.write(fh, off, piece, stable).await?;
            verf = res.verf;
            if (res.committed as u32) < (weakest as u32) {
                weakest = res.committed;
            }
        }
        Ok((verf, weakest))
    }

    pub async fn commit(&mut self, fh: &nfs_fh3, offset: u64, count: u32) -> Result<COMMIT3resok> {
        let args = COMMIT3args {
            file: fh.clone(),
            offset,
            count,
        };
        let res = deadline("COMMIT", self.client.commit(&args)).await?;
        ok(res)
    }

    /// CREATE with any `createhow3`; returns the handle (looked up if the
    /// reply left it out) and the attributes if sent.
    pub async fn create_how(
        &mut self,
        dir: &nfs_fh3,
        n: impl AsRef<[u8]>,
        how: createhow3,
    ) -> Result<(nfs_fh3, Option<fattr3>)> {
        let n = n.as_ref();
        let args = CREATE3args {
            where_: dirop(dir, n),
            how,
        };
        let res = ok(deadline("CREATE", self.client.create(&args)).await?)?;
        let attrs = match res.obj_attributes {
            Nfs3Option::Some(a) => Some(a),
            Nfs3Option::None => None,
        };
        let fh = match res.obj {
            Nfs3Option::Some(fh) => fh,
            Nfs3Option::None => self.lookup(dir, n).await?,
        };
        Ok((fh, attrs))
    }

    /// UNCHECKED create with a mode.
    pub async fn create(
        &mut self,
        dir: &nfs_fh3,
        n: impl AsRef<[u8]>,
        mode: u32,
    ) -> Result<nfs_fh3> {
        Ok(self
            .create_how(dir, n, createhow3::UNCHECKED(mode_attr(mode)))
            .await?
            .0)
    }

    /// GUARDED create with a mode.
    pub async fn create_guarded(
        &mut self,
        dir: &nfs_fh3,
        n: impl AsRef<[u8]>,
        mode: u32,
    ) -> Result<nfs_fh3> {
        Ok(self
            .create_how(dir, n, createhow3::GUARDED(mode_attr(mode)))
            .await?
            .0)
    }

    /// EXCLUSIVE create with a verifier.
    pub async fn create_exclusive(
        &mut self,
        dir: &nfs_fh3,
        n: impl AsRef<[u8]>,
        verf: [u8; 8],
    ) -> Result<nfs_fh3> {
        Ok(self
            .create_how(dir, n, createhow3::EXCLUSIVE(createverf3(verf)))
            .await?
            .0)
    }

    pub async fn mkdir(
        &mut self,
        dir: &nfs_fh3,
        n: impl AsRef<[u8]>,
        mode: u32,
    ) -> Result<nfs_fh3> {
        let n = n.as_ref();
        let args = MKDIR3args {
            where_: dirop(dir, n),
            attributes: mode_attr(mode),
        };
        let res = ok(deadline("MKDIR", self.client.mkdir(&args)).await?)?;
        match res.obj {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => self.lookup(dir, n).await,
        }
    }

    pub async fn symlink(
        &mut self,
        dir: &nfs_fh3,
        n: impl AsRef<[u8]>,
        target: impl AsRef<[u8]>,
    ) -> Result<nfs_fh3> {
        let n = n.as_ref();
        let args = SYMLINK3args {
            where_: dirop(dir, n),
            symlink: symlinkdata3 {
                symlink_attributes: mode_attr(0o777),
                symlink_data: nfspath3(Opaque::borrowed(target.as_ref())),
            },
        };
        let res = ok(deadline("SYMLINK", self.client.symlink(&args)).await?)?;
        match res.obj {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => self.lookup(dir, n).await,
        }
    }

    pub async fn remove(&mut self, dir: &nfs_fh3, n: impl AsRef<[u8]>) -> Result<()> {
        let args = REMOVE3args {
            object: dirop(dir, n.as_ref()),
        };
        ok(deadline("REMOVE", self.client.remove(&args)).await?).map(|_| ())
    }

    pub async fn rmdir(&mut self, dir: &nfs_fh3, n: impl AsRef<[u8]>) -> Result<()> {
        let args = RMDIR3args {
            object: dirop(dir, n.as_ref()),
        };
        ok(deadline("RMDIR", self.client.rmdir(&args)).await?).map(|_| ())
    }

    pub async fn rename(
        &mut self,
        from_dir: &nfs_fh3,
        from: impl AsRef<[u8]>,
        to_dir: &nfs_fh3,
        to: impl AsRef<[u8]>,
    ) -> Result<()> {
        let args = RENAME3args {
            from: dirop(from_dir, from.as_ref()),
            to: dirop(to_dir, to.as_ref()),
        };
        ok(deadline("RENAME", self.client.rename(&args)).await?).map(|_| ())
    }

    pub async fn link(&mut self, file: &nfs_fh3, dir: &nfs_fh3, n: impl AsRef<[u8]>) -> Result<()> {
        let args = LINK3args {
            file: file.clone(),
            link: dirop(dir, n.as_ref()),
        };
        ok(deadline("LINK", self.client.link(&args)).await?).map(|_| ())
    }

    /// One READDIR page.
    pub async fn readdir_page(
        &mut self,
        dir: &nfs_fh3,
        cookie: u64,
        cookieverf: [u8; 8],
        count: u32,
    ) -> Result<READDIR3resok<'static>> {
        let args = READDIR3args {
            dir: dir.clone(),
            cookie,
            cookieverf: nfs3_types::nfs3::cookieverf3(cookieverf),
            count,
        };
        ok(deadline("READDIR", self.client.readdir(&args)).await?)
    }

    /// The whole directory through READDIR pages of `count` bytes, following
    /// cookies; returns the entries and the number of pages it took.
    pub async fn readdir_all(
        &mut self,
        dir: &nfs_fh3,
        count: u32,
    ) -> Result<(Vec<entry3<'static>>, usize)> {
        let mut entries: Vec<entry3<'static>> = Vec::new();
        let mut cookie = 0;
        let mut verf = [0u8; 8];
        for page in 1..=1_000_000 {
            let res = self.readdir_page(dir, cookie, verf, count).await?;
            verf = res.cookieverf.0;
            let got = res.reply.entries.0;
            if got.is_empty() && !res.reply.eof {
                return Err(NfsError::Protocol(format!(
                    "READDIR page {page} at cookie {cookie}: no entries and no eof"
                )));
            }
            if let Some(last) = got.last() {
                cookie = last.cookie;
            }
            entries.extend(got);
            if res.reply.eof {
                return Ok((entries, page));
            }
        }
        Err(NfsError::Protocol("READDIR never reached eof".into()))
    }

    /// One READDIRPLUS page.
    pub async fn readdirplus_page(
        &mut self,
        dir: &nfs_fh3,
        cookie: u64,
        cookieverf: [u8; 8],
        dircount: u32,
        maxcount: u32,
    ) -> Result<READDIRPLUS3resok<'static>> {
        let args = READDIRPLUS3args {
            dir: dir.clone(),
            cookie,
            cookieverf: nfs3_types::nfs3::cookieverf3(cookieverf),
            dircount,
            maxcount,
        };
        ok(deadline("READDIRPLUS", self.client.readdirplus(&args)).await?)
    }

    /// The whole directory through READDIRPLUS pages; entries and page count.
    pub async fn readdirplus_all(
        &mut self,
        dir: &nfs_fh3,
        dircount: u32,
        maxcount: u32,
    ) -> Result<(Vec<PlusEntry>, usize)> {
        let mut entries = Vec::new();
        let mut cookie = 0;
        let mut verf = [0u8; 8];
        for page in 1..=1_000_000 {
            let res = self
                .readdirplus_page(dir, cookie, verf, dircount, maxcount)
                .await?;
            verf = res.cookieverf.0;
            let got = res.reply.entries.0;
            if got.is_empty() && !res.reply.eof {
                return Err(NfsError::Protocol(format!(
                    "READDIRPLUS page {page} at cookie {cookie}: no entries and no eof"
                )));
            }
            for e in got {
                cookie = e.cookie;
                entries.push(PlusEntry {
                    fileid: e.fileid,
                    name: e.name.0.to_vec(),
                    cookie: e.cookie,
                    attrs: match e.name_attributes {
                        Nfs3Option::Some(a) => Some(a),
                        Nfs3Option::None => None,
                    },
                    handle: match e.name_handle {
                        Nfs3Option::Some(h) => Some(h),
                        Nfs3Option::None => None,
                    },
                });
            }
            if res.reply.eof {
                return Ok((entries, page));
            }
        }
        Err(NfsError::Protocol("READDIRPLUS never reached eof".into()))
    }

    pub async fn fsstat(&mut self) -> Result<FSSTAT3resok> {
        let args = FSSTAT3args {
            fsroot: self.root.clone(),
        };
        ok(deadline("FSSTAT", self.client.fsstat(&args)).await?)
    }

    pub async fn fsinfo(&mut self) -> Result<FSINFO3resok> {
        let args = FSINFO3args {
            fsroot: self.root.clone(),
        };
        ok(deadline("FSINFO", self.client.fsinfo(&args)).await?)
    }
}

/// Names in a READDIR listing, as strings (lossy), without "." and "..".
pub fn entry_names(entries: &[entry3<'_>]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8_lossy(e.name.as_ref()).into_owned())
        .filter(|n| n != "." && n != "..")
        .collect()
}
